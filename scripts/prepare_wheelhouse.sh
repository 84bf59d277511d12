#!/usr/bin/env bash
# Prepare an offline wheelhouse for the task image: every step dependency as a cp311 linux x86_64
# wheel, plus the patched Horovod wheel, so `docker build` installs with no index at all.
# The wheels are the lock's own files (requirements.lock, via scripts/image_requirements.py): each is
# checked against the lock's hashes here, and again by the image's `pip install --require-hashes`.
#
# The wheelhouse is cached outside the clone, keyed by the image requirements and the Horovod wheel,
# and reused while they are unchanged. It is then linked into ./wheelhouse (git-ignored), which the
# Dockerfile copies into its builder stage.
#
# Usage: scripts/prepare_wheelhouse.sh [PYTHON]   (default: .venv/bin/python; it must have torch)
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${1:-.venv/bin/python}
CACHE=${GAUNTLET_WHEELHOUSE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/gauntlet/wheelhouse}
WHEELS=${GAUNTLET_WHEEL_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/gauntlet/wheels}

scripts/build_horovod.sh "$PYTHON" "$WHEELS" >&2
horovod=$(ls "$WHEELS"/horovod-0.28.1+torch*-cp311-*.whl | head -1)
requirements=$("$PYTHON" scripts/image_requirements.py --hashes .)
key=$( (echo "$requirements"; basename "$horovod") | sha256sum | cut -c1-16)
target="$CACHE/$key"

if [[ -f "$target/COMPLETE" ]]; then
    echo "wheelhouse: reusing $target ($(ls "$target"/*.whl | wc -l) wheels)" >&2
else
    echo "wheelhouse: building $target" >&2
    rm -rf "$target.partial" && mkdir -p "$target.partial"
    echo "$requirements" > "$target.partial/requirements-image.txt"
    # The host is cp311 on x86_64 Linux like the image, so the wheels pip picks are ones the image can
    # use. torch's CPU wheel comes from pip's configuration if it has it, else the PyTorch wheel page.
    torch_source=()
    "$PYTHON" -m pip install -q --dry-run --no-index --no-deps --ignore-installed \
        "$(grep -m1 -o '^torch==[^ ]*' <<< "$requirements")" >/dev/null 2>&1 \
        || torch_source=(--find-links "${GAUNTLET_TORCH_FIND_LINKS:-https://download.pytorch.org/whl/cpu/torch/}")
    "$PYTHON" -m pip download -q --require-hashes --no-deps --only-binary :all: "${torch_source[@]}" \
        --dest "$target.partial" -r "$target.partial/requirements-image.txt" 2> >(grep -v "^WARNING: Location" >&2) \
        || { echo "wheelhouse: a locked package has no cp311 manylinux wheel (or a hash differs); the image's" \
            "hash-checked install takes the lock's files only: pin a version with a wheel in requirements.txt," \
            "then make lock" >&2; exit 1; }
    cp "$horovod" "$target.partial/"
    touch "$target.partial/COMPLETE"
    rm -rf "$target" && mv "$target.partial" "$target"
fi

# Hard links are free and survive `docker build`'s context upload (symlinks out of the context do not).
rm -rf wheelhouse && mkdir wheelhouse
cp -l "$target"/*.whl wheelhouse/ 2>/dev/null || cp "$target"/*.whl wheelhouse/
echo "wheelhouse: ./wheelhouse has $(ls wheelhouse/*.whl | wc -l) wheels ($(du -sh wheelhouse | cut -f1))" >&2
