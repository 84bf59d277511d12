#!/usr/bin/env bash
# PostgreSQL 15 (Airflow's metadata DB and Celery's result backend) and Redis (Celery's broker) for the
# production profile of scripts/stack.sh: Debian's packages (installed with apt-get when missing), run
# as an unprivileged user on loopback ports, data under $AIRFLOW_HOME/stack/{postgres,redis}.
#
#   scripts/services.sh up       install if missing, initialise once, start (idempotent)
#   scripts/services.sh down     stop both; the data stays, so the next `up` keeps Airflow's history
#   scripts/services.sh status   what runs
#   scripts/services.sh urls     the SQLAlchemy and broker URLs, as `export` lines
#
# Settings (environment): AIRFLOW_HOME (.airflow/), GAUNTLET_PG_PORT (15432), GAUNTLET_REDIS_PORT (16379),
# GAUNTLET_SERVICE_USER (root runs the services as this system user, made if missing: gauntlet; any
# other user runs them as itself). Passwords are generated once into stack/services.secrets.env.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export AIRFLOW_HOME="${AIRFLOW_HOME:-$ROOT/.airflow}"
STATE="$AIRFLOW_HOME/stack"
PG_BIN="${GAUNTLET_PG_BIN:-/usr/lib/postgresql/15/bin}"
PG_PORT="${GAUNTLET_PG_PORT:-15432}"
REDIS_PORT="${GAUNTLET_REDIS_PORT:-16379}"
PG_DIR="$STATE/postgres"
REDIS_DIR="$STATE/redis"
SECRETS="$STATE/services.secrets.env"

log() { printf '[services] %s\n' "$*" >&2; }

secrets() {  # made once and kept: the data folders were initialised with them
  if [[ ! -f "$SECRETS" ]]; then
    mkdir -p "$STATE"
    (umask 077; {
      echo "export GAUNTLET_PG_PASSWORD='$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')'"
      echo "export GAUNTLET_REDIS_PASSWORD='$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')'"
    } > "$SECRETS")
  fi
  # shellcheck disable=SC1090
  source "$SECRETS"
}

service_user() {
  if [[ $(id -u) -eq 0 ]]; then echo "${GAUNTLET_SERVICE_USER:-gauntlet}"; else id -un; fi
}

as_service() {  # command...: run as the service user (PostgreSQL refuses to run as root)
  local user; user="$(service_user)"
  if [[ "$user" == "$(id -un)" ]]; then "$@"; else runuser -u "$user" -- "$@"; fi
}

install_packages() {
  local missing=()
  [[ -x "$PG_BIN/initdb" ]] || missing+=(postgresql-15)
  command -v redis-server >/dev/null || missing+=(redis-server)
  ((${#missing[@]} == 0)) && return 0
  log "installing ${missing[*]} (apt-get)"
  local sudo=""; [[ $(id -u) -eq 0 ]] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  # Debian's packages start a system-wide server of their own where an init system runs; ours are
  # separate instances on their own ports and folders, so those are left as they are.
}

prepare() {
  install_packages
  local user; user="$(service_user)"
  if ! id -u "$user" >/dev/null 2>&1; then
    log "creating system user $user for the services"
    useradd --system --no-create-home --shell /usr/sbin/nologin "$user"
  fi
  mkdir -p "$PG_DIR/run" "$REDIS_DIR"
  secrets
  [[ "$user" == "$(id -un)" ]] || chown -R "$user:" "$PG_DIR" "$REDIS_DIR"
  if ! as_service test -w "$PG_DIR"; then
    log "user $user cannot reach $PG_DIR: make every folder above it traversable (chmod o+x) or set AIRFLOW_HOME elsewhere"
    exit 2
  fi
}

pg_up() {
  if [[ ! -f "$PG_DIR/data/PG_VERSION" ]]; then
    log "initialising PostgreSQL in $PG_DIR/data"
    local pwfile="$PG_DIR/.pwfile"
    (umask 077; echo "$GAUNTLET_PG_PASSWORD" > "$pwfile")
    [[ "$(service_user)" == "$(id -un)" ]] || chown "$(service_user):" "$pwfile"
    as_service "$PG_BIN/initdb" -D "$PG_DIR/data" -U airflow --pwfile="$pwfile" --auth=scram-sha-256 \
      --encoding=UTF8 --locale=C.UTF-8 > "$PG_DIR/initdb.log" 2>&1 || { tail -20 "$PG_DIR/initdb.log"; exit 1; }
    rm -f "$pwfile"
  fi
  if as_service "$PG_BIN/pg_ctl" -D "$PG_DIR/data" status >/dev/null 2>&1; then
    log "postgres already running"
  else
    # Loopback only; the socket in our own folder (Debian's /var/run/postgresql belongs to the system server).
    as_service "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -l "$PG_DIR/postgres.log" -w -t 60 \
      -o "-c listen_addresses=127.0.0.1 -p $PG_PORT -k $PG_DIR/run -c max_connections=200" start >/dev/null
    log "started postgres on 127.0.0.1:$PG_PORT (data $PG_DIR/data, log $PG_DIR/postgres.log)"
  fi
  if ! PGPASSWORD="$GAUNTLET_PG_PASSWORD" "$PG_BIN/psql" -h 127.0.0.1 -p "$PG_PORT" -U airflow -d postgres -tAc \
    "SELECT 1 FROM pg_database WHERE datname = 'airflow'" | grep -q 1; then
    PGPASSWORD="$GAUNTLET_PG_PASSWORD" "$PG_BIN/createdb" -h 127.0.0.1 -p "$PG_PORT" -U airflow airflow
    log "created database airflow"
  fi
}

redis_up() {
  if redis_running; then log "redis already running"; return; fi
  # The password lives in the config file, readable by the service user only.
  (umask 077; cat > "$REDIS_DIR/redis.conf" <<EOF
bind 127.0.0.1
port $REDIS_PORT
protected-mode yes
requirepass $GAUNTLET_REDIS_PASSWORD
dir $REDIS_DIR
pidfile $REDIS_DIR/redis.pid
logfile $REDIS_DIR/redis.log
daemonize yes
appendonly yes
save 60 1
EOF
  )
  [[ "$(service_user)" == "$(id -un)" ]] || chown "$(service_user):" "$REDIS_DIR/redis.conf"
  as_service redis-server "$REDIS_DIR/redis.conf"
  for _ in $(seq 1 50); do redis_running && break; sleep 0.2; done
  redis_running || { tail -20 "$REDIS_DIR/redis.log"; exit 1; }
  log "started redis on 127.0.0.1:$REDIS_PORT (data $REDIS_DIR, log $REDIS_DIR/redis.log)"
}

redis_running() {
  [[ -f "$REDIS_DIR/redis.pid" ]] && kill -0 "$(cat "$REDIS_DIR/redis.pid")" 2>/dev/null
}

pg_running() {
  [[ -f "$PG_DIR/data/postmaster.pid" ]] && kill -0 "$(head -1 "$PG_DIR/data/postmaster.pid")" 2>/dev/null
}

up() {
  prepare
  pg_up
  redis_up
}

down() {
  if pg_running; then
    as_service "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -m fast -w -t 60 stop >/dev/null && log "stopped postgres"
  fi
  if redis_running; then
    local pid; pid="$(cat "$REDIS_DIR/redis.pid")"
    kill -TERM "$pid"  # redis writes its append-only file and exits
    for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
    log "stopped redis"
  fi
}

status() {
  local code=0
  if pg_running; then printf '%-14s running (pid %s, 127.0.0.1:%s)\n' postgres "$(head -1 "$PG_DIR/data/postmaster.pid")" "$PG_PORT"
  else printf '%-14s stopped\n' postgres; code=3; fi
  if redis_running; then printf '%-14s running (pid %s, 127.0.0.1:%s)\n' redis "$(cat "$REDIS_DIR/redis.pid")" "$REDIS_PORT"
  else printf '%-14s stopped\n' redis; code=3; fi
  return $code
}

urls() {
  secrets
  local pg="airflow:$GAUNTLET_PG_PASSWORD@127.0.0.1:$PG_PORT/airflow"
  echo "export AIRFLOW__DATABASE__SQL_ALCHEMY_CONN='postgresql+psycopg2://$pg'"
  echo "export AIRFLOW__CELERY__RESULT_BACKEND='db+postgresql+psycopg2://$pg'"
  echo "export AIRFLOW__CELERY__BROKER_URL='redis://:$GAUNTLET_REDIS_PASSWORD@127.0.0.1:$REDIS_PORT/0'"
}

case "${1:-}" in
  up) up ;;
  down) down ;;
  status) status ;;
  urls) urls ;;
  *) echo "usage: $0 up|down|status|urls" >&2; exit 2 ;;
esac
