#!/usr/bin/env bash
# An MLflow tracking server for gauntlet's mirror, in a virtualenv of its own: MLflow's pins clash
# with Airflow's, so it never enters .venv (gauntlet speaks to it over the REST API only).
#
#   scripts/mlflow_server.sh install          build the virtualenv once; a stamp makes a re-run a no-op
#   scripts/mlflow_server.sh serve PORT DIR   install, then serve on 127.0.0.1:PORT in the foreground with a
#                                             SQLite backend and artifacts under DIR (what the tests start)
#   scripts/mlflow_server.sh start            install, then serve in the background for `make up MLFLOW=1`
#   scripts/mlflow_server.sh stop | status    (port MLFLOW_PORT, 5000; data and log under .airflow/mlflow/)
#   scripts/mlflow_server.sh uri              the MLFLOW_TRACKING_URI of the background server
#
# Settings (environment): MLFLOW_VENV (.venv-mlflow), MLFLOW_PORT (5000), PYTHON (python3.11).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
MLFLOW_VERSION=3.17.2
VENV="${MLFLOW_VENV:-$ROOT/.venv-mlflow}"
STAMP="$VENV/.mlflow-installed"
PORT="${MLFLOW_PORT:-5000}"
STATE="${AIRFLOW_HOME:-$ROOT/.airflow}/mlflow"

log() { printf '[mlflow] %s\n' "$*" >&2; }

install() {
  if [[ -f "$STAMP" && "$(cat "$STAMP")" == "mlflow==$MLFLOW_VERSION" ]]; then
    return 0
  fi
  local python="${PYTHON:-python3.11}"
  command -v "$python" >/dev/null || python=python3
  log "building $VENV with mlflow==$MLFLOW_VERSION (once; pip's cache makes a rebuild quicker)"
  [[ -x "$VENV/bin/python" ]] || "$python" -m venv "$VENV"
  # This machine's pip config may list local indexes that do not exist; their warnings are noise.
  "$VENV/bin/python" -m pip install -q --disable-pip-version-check "mlflow==$MLFLOW_VERSION" 2>&1 \
    | grep -v "^WARNING: Location" >&2 || true
  "$VENV/bin/mlflow" --version >/dev/null || { log "install failed: $VENV/bin/mlflow does not run"; exit 1; }
  echo "mlflow==$MLFLOW_VERSION" > "$STAMP"
}

serve() {  # port dir: exec, so the caller's pid is the server's (its workers share its process group)
  local port="$1" dir="$2"
  mkdir -p "$dir/artifacts"
  # The tracking API is all gauntlet needs: no GenAI job workers (a dozen processes), no telemetry.
  export MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false MLFLOW_DISABLE_TELEMETRY=true
  exec "$VENV/bin/mlflow" server --host 127.0.0.1 --port "$port" --workers 1 \
    --backend-store-uri "sqlite:///$dir/mlflow.db" \
    --serve-artifacts --artifacts-destination "$dir/artifacts"
}

running() { [[ -f "$STATE/server.pid" ]] && kill -0 "$(cat "$STATE/server.pid")" 2>/dev/null; }

start() {
  if running; then log "already running (pid $(cat "$STATE/server.pid")), http://127.0.0.1:$PORT"; return; fi
  mkdir -p "$STATE"
  setsid "$0" serve "$PORT" "$STATE" > "$STATE/server.log" 2>&1 < /dev/null &
  echo $! > "$STATE/server.pid"
  for _ in $(seq 1 120); do
    if curl -fsS "http://127.0.0.1:$PORT/health" >/dev/null 2>&1; then
      log "serving http://127.0.0.1:$PORT (pid $(cat "$STATE/server.pid"), log $STATE/server.log)"
      return
    fi
    running || { log "the server exited; see $STATE/server.log"; tail -20 "$STATE/server.log" >&2; exit 1; }
    sleep 1
  done
  log "no answer on port $PORT after 120 s; see $STATE/server.log"
  exit 1
}

stop() {
  running || { rm -f "$STATE/server.pid"; return 0; }
  local pid; pid="$(cat "$STATE/server.pid")"
  kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 1 30); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
  kill -KILL -- "-$pid" 2>/dev/null || true
  rm -f "$STATE/server.pid"
  log "stopped"
}

case "${1:-}" in
  install) install ;;
  serve) [[ $# -eq 3 ]] || { log "usage: $0 serve PORT DIR"; exit 2; }; install; serve "$2" "$3" ;;
  start) install; start ;;
  stop) stop ;;
  status) if running; then echo "mlflow running (pid $(cat "$STATE/server.pid")), http://127.0.0.1:$PORT"; else echo "mlflow stopped"; fi ;;
  uri) echo "http://127.0.0.1:$PORT" ;;
  *) log "usage: $0 install | serve PORT DIR | start | stop | status | uri"; exit 2 ;;
esac
