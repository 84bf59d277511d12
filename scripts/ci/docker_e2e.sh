#!/usr/bin/env bash
# End to end with runtime=docker: the nightly DAG through Airflow, every step in the task image.
#
#  1. Debian's docker engine (installed and started if missing) and a debootstrap stand-in base image
#     (nothing can be pulled here), then the CPU task image from the project's Dockerfile.
#  2. The image runs as non-root, and its entry point is the step CLI.
#  3. moto's S3 server on 127.0.0.1 (containers reach it through host networking), the demo data,
#     then `airflow dags test gauntlet_nightly` with GAUNTLET_RUNTIME=docker in a throwaway AIRFLOW_HOME.
#  4. Every one of the five tasks ran in a container of that image (the container id each step logs
#     from inside is inspected), and the registry's champion records the image digest in its lineage.
#  5. A one-line source change rebuilds only the source layer: both build timings are printed.
#
# Caches between runs on one machine: the base image, the wheelhouse (~/.cache/gauntlet/wheelhouse),
# the Horovod wheel and Docker's layer cache. Usage: scripts/ci/docker_e2e.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
PY=${PYTHON:-$ROOT/.venv/bin/python}
BIN=$(dirname "$PY")
TAG=${GAUNTLET_E2E_IMAGE:-gauntlet:cpu}
BASE=${BASE_IMAGE:-gauntlet-base:bookworm}
LOGICAL_DATE=2026-11-08T02:00:00+00:00
script_started=$(date +%s)
say() { printf '\n== %s\n' "$*"; }
fail() { echo "FAIL: $*" >&2; exit 1; }

work=$(mktemp -d)
moto_pid=""
cleanup() {
    [[ -n "$moto_pid" ]] && kill "$moto_pid" 2>/dev/null && wait "$moto_pid" 2>/dev/null
    docker ps -aq --filter "label=gauntlet.e2e=$$" | xargs -r docker rm -f >/dev/null 2>&1 || true
    rm -rf "$work"
}
trap cleanup EXIT

say "docker engine"
if ! command -v dockerd >/dev/null || ! command -v debootstrap >/dev/null; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker.io debootstrap >/dev/null
fi
if ! docker info >/dev/null 2>&1; then
    # No init system here: start the daemon ourselves (it keeps running for the next job).
    nohup dockerd >/tmp/dockerd.log 2>&1 &
    for _ in $(seq 60); do docker info >/dev/null 2>&1 && break; sleep 1; done
fi
docker info --format 'docker {{.ServerVersion}}, storage {{.Driver}}' || fail "dockerd did not start"

say "base image"
scripts/make_base_image.sh "$BASE"

say "CPU task image"
t0=$(date +%s%N)
BASE_IMAGE=$BASE scripts/build_image.sh "$TAG" | tee "$work/build.out"
build_ms=$(( ($(date +%s%N) - t0) / 1000000 ))
image_id=$(awk '/^GAUNTLET_IMAGE /{print $3}' "$work/build.out")
[[ $image_id == sha256:* ]] || fail "build printed no image id"

say "non-root, entry point"
identity=$(docker run --rm --network none --entrypoint id "$TAG")
echo "$identity"
[[ $identity == uid=10001* ]] || fail "image runs as '$identity', expected uid 10001"
help_text=$(docker run --rm --network none "$TAG" --help)
[[ $help_text == *validate* ]] || fail "entry point is not the step CLI"
docker image inspect --format '{{.Config.Env}}' "$TAG" | grep -qi "AWS_" && fail "AWS settings are baked into the image"

say "S3 server on 127.0.0.1, demo data"
port=$("$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
"$BIN/moto_server" -H 127.0.0.1 -p "$port" >"$work/moto.log" 2>&1 &
moto_pid=$!
export AWS_ENDPOINT_URL=http://127.0.0.1:$port AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing \
    AWS_DEFAULT_REGION=us-east-1
for _ in $(seq 60); do "$PY" -c "import socket; socket.create_connection(('127.0.0.1', $port), 1)" 2>/dev/null && break; sleep 0.5; done
store=s3://gauntlet-e2e-$$
"$PY" -m gauntlet --store "$store" seed --first-day 2026-11-01 --days 7 | tail -1 | cut -c1-120

say "nightly DAG through Airflow, runtime=docker"
export AIRFLOW_HOME=$work/airflow
export AIRFLOW__CORE__DAGS_FOLDER=$ROOT/dags AIRFLOW__CORE__PLUGINS_FOLDER=$ROOT/plugins \
    AIRFLOW__CORE__LOAD_EXAMPLES=False AIRFLOW__CORE__UNIT_TEST_MODE=False GAUNTLET_HOME=$ROOT \
    GAUNTLET_STORE=$store GAUNTLET_RUNTIME=local AIRFLOW_VAR_GAUNTLET_RUNTIME=docker GAUNTLET_IMAGE=$TAG GAUNTLET_GPUS=0 \
    GAUNTLET_DOCKER_AUTO_REMOVE=never PATH=$BIN:$PATH
"$BIN/airflow" db migrate >"$work/migrate.log" 2>&1 || { tail -20 "$work/migrate.log"; fail "airflow db migrate"; }
t0=$(date +%s)
# Label this run's containers so cleanup removes exactly them.
GAUNTLET_DOCKER_LABELS="gauntlet.e2e=$$" "$BIN/airflow" dags test gauntlet_nightly "$LOGICAL_DATE" \
    >"$work/dags_test.log" 2>&1 || { tail -60 "$work/dags_test.log"; fail "airflow dags test"; }
dag_s=$(( $(date +%s) - t0 ))
echo "DAG run took ${dag_s}s"

say "every task ran in a container of $TAG"
cat "$work/dags_test.log" > "$work/all.log"
find "$AIRFLOW_HOME/logs" -type f -name '*.log' -exec cat {} + >> "$work/all.log" 2>/dev/null || true
# The DAG was parsed with GAUNTLET_RUNTIME=local; the Airflow Variable switched each task to docker.
[[ $(grep -c "runtime: docker" "$work/all.log") -ge 5 ]] || fail "the gauntlet_runtime Variable did not select docker"
for step in validate preprocess train evaluate register; do
    cid=$(grep -oE "gauntlet $step on host [^,]+, container [0-9a-f]{64}" "$work/all.log" | head -1 | grep -oE '[0-9a-f]{64}$' || true)
    [[ -n "$cid" ]] || fail "$step: no container id in its task log"
    image_of=$(docker inspect --format '{{.Image}}' "$cid")
    [[ $image_of == "$image_id" ]] || fail "$step ran in $cid from $image_of, not $image_id"
    echo "$step: container ${cid:0:12} from image ${image_id:7:12}"
done

say "registry champion records the image digest"
"$PY" -m gauntlet --store "$store" registry list | tee "$work/registry.out" | tail -5
champion=$("$PY" -m gauntlet --store "$store" registry list | tail -1 | "$PY" -c 'import json,sys; print(json.loads(sys.stdin.read().split(" ",1)[1])["champion"])')
[[ $champion != None ]] || fail "no champion after the run"
lineage_digest=$("$PY" -m gauntlet --store "$store" registry show "$champion" \
    | "$PY" -c 'import json,sys; print(json.JSONDecoder().raw_decode(sys.stdin.read())[0]["image_digest"])')
echo "champion v$champion image_digest=$lineage_digest"
[[ $lineage_digest == "$image_id" ]] || fail "champion lineage has image digest '$lineage_digest', not $image_id"

say "one-line source change rebuilds one thin layer"
# A snapshot of the build context, so edits others make to the tree meanwhile cannot blur the check.
ctx=$work/context
mkdir -p "$ctx"
cp -r Dockerfile .dockerignore pyproject.toml requirements.txt requirements.lock scripts include src "$ctx"/
cp -al wheelhouse "$ctx"/wheelhouse
build_ctx() {  # TAG LOG: build the snapshot, print milliseconds taken
    local t0
    t0=$(date +%s%N)
    docker build --target cpu --build-arg "BASE_IMAGE=$BASE" -t "$1" "$ctx" >"$2" 2>&1 || { tail -20 "$2"; fail "build $1"; }
    echo $(( ($(date +%s%N) - t0) / 1000000 ))
}
build_ctx "$TAG-before" "$work/before.log" >/dev/null
echo "# rebuilt by docker_e2e.sh at $(date +%s)" >> "$ctx/src/gauntlet/__init__.py"
rebuild_ms=$(build_ctx "$TAG-edit" "$work/rebuild.log")
layers() { docker image inspect --format '{{range .RootFS.Layers}}{{println .}}{{end}}' "$1" | sed '/^$/d'; }
total=$(layers "$TAG-edit" | wc -l)
shared=$(comm -12 <(layers "$TAG-before" | sort) <(layers "$TAG-edit" | sort) | wc -l)
# The dependency layer (the virtualenv, by far the largest) must be the very one in $TAG.
venv_layer=$(layers "$TAG-edit" | sed -n 3p)
layers "$TAG" | grep -qx "$venv_layer" || fail "the rebuild did not reuse $TAG's dependency layer"
echo "rebuild steps that copy or run:"
awk '/^Step [0-9]+\/[0-9]+ : (COPY|RUN)/ {step=substr($0, 1, 90); getline; print "  " (/Using cache/ ? "cached " : "BUILT  ") step}' \
    "$work/rebuild.log"
echo "layers: $shared of $total shared with the unedited image"
[[ $shared -eq $((total - 1)) ]] || fail "the edit rebuilt $((total - shared)) layers, expected only the source layer"
docker rmi "$TAG-edit" "$TAG-before" >/dev/null

printf '\nbuild (%s): %d.%03d s; rebuild after a one-line change: %d.%03d s; DAG run: %d s; whole script: %d s\n' \
    "$TAG" $((build_ms / 1000)) $((build_ms % 1000)) $((rebuild_ms / 1000)) $((rebuild_ms % 1000)) \
    "$dag_s" $(( $(date +%s) - script_started ))
echo "docker e2e: OK"
