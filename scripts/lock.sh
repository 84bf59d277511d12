#!/usr/bin/env bash
# Regenerate requirements.lock (`make lock`): every package of the environment requirements.txt and
# requirements-dev.txt describe, at an exact version, with the sha256 of each of its files.
#
# Resolved for Python 3.11.0 (so every 3.11.x installs it: a release needing a later patch level is
# left out) on Linux x86_64, by uv, which runs from a virtualenv of its own (never the project's).
# pip, setuptools and wheel are locked too: setup builds the package and Horovod with them. Horovod
# itself is not in the lock (scripts/build_horovod.sh builds it).
#
# torch is the CPU build (2.13.0+cpu), which is on the PyTorch index, not on PyPI (whose Linux torch
# pulls in CUDA): TORCH_FIND_LINKS names where its wheel is. By default that is a folder of pip's own
# configuration holding the wheel (a machine's wheel cache), else the PyTorch CPU wheel page.
#
# Versions already in the lock are kept where they still fit; UPGRADE=1 takes the newest of everything.
# Usage: scripts/lock.sh        UV=/path/to/uv  TORCH_FIND_LINKS=DIR|URL  UPGRADE=1
set -euo pipefail
cd "$(dirname "$0")/.."

UV_VERSION=0.13.9
PYTHON=${PYTHON:-python3.11}
command -v "$PYTHON" >/dev/null || PYTHON=python3

if [[ -z "${UV:-}" ]]; then
    tools=${XDG_CACHE_HOME:-$HOME/.cache}/gauntlet/uv-$UV_VERSION
    if [[ ! -x "$tools/bin/uv" ]]; then
        "$PYTHON" -m venv "$tools"
        "$tools/bin/pip" install -q "uv==$UV_VERSION" 2> >(grep -v "^WARNING: Location" >&2)
    fi
    UV=$tools/bin/uv
fi

torch_version=$(grep -m1 -o '^torch==[^ ;#]*' requirements.txt | cut -d= -f3)
if [[ -z "${TORCH_FIND_LINKS:-}" ]]; then
    TORCH_FIND_LINKS=https://download.pytorch.org/whl/cpu/torch/
    for folder in ${PIP_FIND_LINKS:-} $("$PYTHON" -m pip config get global.find-links 2>/dev/null || true); do
        if ls "$folder"/torch-"$torch_version"+cpu-cp311-*.whl >/dev/null 2>&1; then TORCH_FIND_LINKS=$folder; break; fi
    done
fi
echo "lock: torch $torch_version+cpu from $TORCH_FIND_LINKS" >&2

upgrade=()
[[ "${UPGRADE:-0}" == 1 ]] && upgrade=(--upgrade)
# PyPI only (a machine's extra indexes do not join in), the CPU torch through its wheel page; the
# build tools come in on stdin so they need no file of their own.
printf '%s\n' "torch==$torch_version+cpu" pip setuptools wheel \
    | "$UV" pip compile requirements.txt requirements-dev.txt - "${upgrade[@]}" \
        --generate-hashes --python-version 3.11 --python-platform x86_64-manylinux_2_28 \
        --index-url https://pypi.org/simple --find-links "$TORCH_FIND_LINKS" \
        --custom-compile-command "make lock" --quiet -o requirements.lock
echo "lock: requirements.lock has $(grep -c '^[A-Za-z0-9]' requirements.lock) packages" >&2
