#!/usr/bin/env bash
# Set up everything the demo and the tests need, idempotently:
#   .venv with the pinned requirements, the patched Horovod wheel (built once, cached in
#   ~/.cache/gauntlet/wheels), and the gauntlet package itself (editable).
# A stamp keyed by the requirement files' hash makes a second run a no-op.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3.11}
command -v "$PYTHON" >/dev/null || PYTHON=python3
"$PYTHON" -c 'import sys; assert sys.version_info[:2] == (3, 11), "gauntlet needs Python 3.11, found " + sys.version' \
    || { echo "setup: Python 3.11 is required" >&2; exit 1; }

VENV=${VENV:-.venv}
STAMP="$VENV/.gauntlet-installed"
want=$(cat requirements.txt requirements-dev.txt pyproject.toml scripts/build_horovod.sh | sha256sum | cut -c1-16)

if [[ -f "$STAMP" && "$(cat "$STAMP")" == "$want" ]]; then
    exit 0
fi
[[ -x "$VENV/bin/python" ]] || "$PYTHON" -m venv "$VENV"
PY="$VENV/bin/python"
# This machine's pip config may list local indexes that do not exist; their warnings are noise.
pip_quiet() { "$PY" -m pip install -q "$@" 2>&1 | grep -v "^WARNING: Location" || true; }
echo "setup: installing pinned dependencies into $VENV"
pip_quiet --upgrade pip wheel setuptools
# torch first: Horovod's build compiles against it.
pip_quiet torch==2.13.0 numpy cloudpickle psutil pyyaml packaging cffi
"$PY" -m pip install -q -r requirements.txt -r requirements-dev.txt 2>&1 | grep -v "^WARNING: Location" || true
"$PY" -c 'import airflow, torch, great_expectations, moto' >/dev/null 2>&1 || { echo "setup: dependency install failed" >&2; exit 1; }
bash scripts/build_horovod.sh "$PY"
WHEEL_DIR=${GAUNTLET_WHEEL_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/gauntlet/wheels}
pip_quiet --no-deps --force-reinstall "$(ls "$WHEEL_DIR"/horovod-0.28.1+torch2130-*.whl | head -1)"
pip_quiet --no-deps -e .
build_info=$("$VENV/bin/horovodrun" --check-build)
grep -q '\[X\] PyTorch' <<< "$build_info" || { echo "setup: Horovod lacks PyTorch support" >&2; exit 1; }
echo "$want" > "$STAMP"
echo "setup: done ($("$PY" -c 'from importlib.metadata import version as v; print(", ".join(f"{p} {v(p)}" for p in ("apache-airflow", "torch", "horovod", "great-expectations")))'))"
