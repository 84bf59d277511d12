#!/usr/bin/env bash
# The demo: one nightly run of the pipeline through Airflow, on the embedded S3 server.
#
# Starts moto's S3 server on 127.0.0.1 (unless AWS_ENDPOINT_URL already points somewhere, e.g.
# MinIO or AWS), lands a demo table's partitions (DATASET: digits, the default, wine or diabetes),
# runs `airflow dags test gauntlet_nightly` for one logical date with config=include/configs/$DATASET.yaml
# and a project-local AIRFLOW_HOME, and prints what each step did.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
VENV_BIN="$ROOT/.venv/bin"
export PATH="$VENV_BIN:$PATH"

LOGICAL_DATE=${GAUNTLET_DEMO_DATE:-2026-11-08T02:00:00+00:00}
DATASET=${DATASET:-digits}
CONFIG="include/configs/$DATASET.yaml"
if [[ ! -f "$CONFIG" ]]; then
    echo "demo: no $CONFIG (DATASET is digits, wine or diabetes)" >&2
    exit 2
fi
export GAUNTLET_STORE=${GAUNTLET_STORE:-s3://gauntlet}
export GAUNTLET_HOME="$ROOT"
export AIRFLOW_HOME=${AIRFLOW_HOME:-$ROOT/.airflow}
export AIRFLOW__CORE__DAGS_FOLDER="$ROOT/dags" AIRFLOW__CORE__PLUGINS_FOLDER="$ROOT/plugins"
export AIRFLOW__CORE__LOAD_EXAMPLES=False
mkdir -p "$AIRFLOW_HOME"
started=$(date +%s)

if [[ -z "${AWS_ENDPOINT_URL:-}" ]]; then
    port=${GAUNTLET_S3_PORT:-5055}
    echo "demo: starting the embedded S3 server (moto) on 127.0.0.1:$port"
    "$VENV_BIN/moto_server" -H 127.0.0.1 -p "$port" > "$AIRFLOW_HOME/moto.log" 2>&1 &
    moto_pid=$!
    trap 'kill $moto_pid 2>/dev/null || true' EXIT
    export AWS_ENDPOINT_URL="http://127.0.0.1:$port"
    export AWS_ACCESS_KEY_ID=${AWS_ACCESS_KEY_ID:-demo} AWS_SECRET_ACCESS_KEY=${AWS_SECRET_ACCESS_KEY:-demo-secret}
    export AWS_DEFAULT_REGION=${AWS_DEFAULT_REGION:-us-east-1}
    for _ in $(seq 50); do
        python -c "import socket; socket.create_connection(('127.0.0.1', $port), 0.2)" 2>/dev/null && break
        sleep 0.2
    done
fi

echo "demo: preparing Airflow metadata in $AIRFLOW_HOME"
airflow db migrate > "$AIRFLOW_HOME/db-migrate.log" 2>&1
echo "demo: landing the $DATASET partitions in $GAUNTLET_STORE"
if [[ "$DATASET" == digits ]]; then seed_args=(seed); else seed_args=(seed --dataset "$DATASET"); fi
python -m gauntlet --config "$CONFIG" "${seed_args[@]}" 2>&1 | grep -E "landed" | sed 's/^.*INFO gauntlet.cli: /  /'

log="$AIRFLOW_HOME/demo-run.log"
echo "demo: running the nightly DAG through Airflow for $LOGICAL_DATE with config=$CONFIG (full log: $log)"
# Show the steps' own lines as they happen; Airflow's bookkeeping stays in the log file.
set +e
airflow dags test --conf "{\"config\": \"$CONFIG\"}" gauntlet_nightly "$LOGICAL_DATE" 2>&1 | tee "$log" \
    | grep --line-buffered -E "gauntlet\.(validate|preprocess|train|worker|evaluate|register)|^\S* \[info +\] (\||$)|\[rank [0-9]+\]|error:|Task failed|Marking task as" \
    | sed -u -E 's/^[0-9T:.Z-]+ \[[a-z]+ +\] //; s/ +\[airflow\.task\.operators[^]]*\].*$//; s/ +\[task\].*$//'
status=${PIPESTATUS[0]}
set -e
python -m gauntlet --run-id latest summary | grep -v '^GAUNTLET_OUTPUTS'
echo
echo "demo: registry"
python -m gauntlet --config "$CONFIG" registry list | grep -v '^GAUNTLET_OUTPUTS'
echo "demo: finished in $(( $(date +%s) - started ))s (Airflow run exit status $status)"
exit "$status"
