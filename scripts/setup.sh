#!/usr/bin/env bash
# Set up everything the demo and the tests need, idempotently:
#   .venv with the locked environment (requirements.lock: every package at an exact version, with
#   hashes), the patched Horovod wheel (built once, cached in ~/.cache/gauntlet/wheels), and the
#   gauntlet package itself (editable).
# A stamp keyed by the requirement files' and the lock's hash makes a second run a no-op.
#   GAUNTLET_TORCH_FIND_LINKS  where torch's CPU wheel is (default: the PyTorch CPU wheel page), used
#                              only when pip's own configuration does not find it
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3.11}
command -v "$PYTHON" >/dev/null || PYTHON=python3
"$PYTHON" -c 'import sys; assert sys.version_info[:2] == (3, 11), "gauntlet needs Python 3.11, found " + sys.version' \
    || { echo "setup: Python 3.11 is required" >&2; exit 1; }

VENV=${VENV:-.venv}
STAMP="$VENV/.gauntlet-installed"
want=$(cat requirements.txt requirements-dev.txt requirements.lock pyproject.toml scripts/build_horovod.sh | sha256sum | cut -c1-16)

if [[ -f "$STAMP" && "$(cat "$STAMP")" == "$want" ]]; then
    exit 0
fi
[[ -x "$VENV/bin/python" ]] || "$PYTHON" -m venv "$VENV"
PY="$VENV/bin/python"
# This machine's pip config may list local indexes that do not exist; their warnings are noise.
# pip's own exit status is kept.
pip_quiet() { "$PY" -m pip "$@" 2> >(grep -v "^WARNING: Location" >&2); }
echo "setup: installing the locked environment (requirements.lock) into $VENV"
# torch's CPU build (`+cpu`) is on the PyTorch index, not PyPI (whose Linux torch pulls in CUDA): name
# its wheel page unless pip's own configuration (a wheel folder, a mirror) already finds the wheel.
torch_pin=$(grep -m1 -o '^torch==[^ ]*' requirements.lock)
torch_source=()
pip_quiet install -q --dry-run --no-index --no-deps --ignore-installed "$torch_pin" >/dev/null 2>&1 \
    || torch_source=(--find-links "${GAUNTLET_TORCH_FIND_LINKS:-https://download.pytorch.org/whl/cpu/torch/}")
# Every package at the lock's version, its file checked against the lock's hashes, and no resolver:
# what the lock names is what gets installed (torch too, which Horovod's build compiles against).
pip_quiet install -q --require-hashes --no-deps "${torch_source[@]}" -r requirements.lock \
    || { echo "setup: installing requirements.lock failed (see pip's message above)" >&2; exit 1; }
bash scripts/build_horovod.sh "$PY"
WHEEL_DIR=${GAUNTLET_WHEEL_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/gauntlet/wheels}
pip_quiet install -q --no-deps --force-reinstall "$(ls "$WHEEL_DIR"/horovod-0.28.1+torch2130-*.whl | head -1)"
# The package is built with the lock's setuptools, not a fresh download from the index.
pip_quiet install -q --no-deps --no-build-isolation -e .
pip_quiet check >/dev/null || { pip_quiet check >&2; echo "setup: the environment is inconsistent" >&2; exit 1; }
build_info=$("$VENV/bin/horovodrun" --check-build)
grep -q '\[X\] PyTorch' <<< "$build_info" || { echo "setup: Horovod lacks PyTorch support" >&2; exit 1; }
echo "$want" > "$STAMP"
echo "setup: done ($("$PY" -c 'from importlib.metadata import version as v; print(", ".join(f"{p} {v(p)}" for p in ("apache-airflow", "torch", "horovod", "great-expectations")))'))"
