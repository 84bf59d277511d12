#!/usr/bin/env bash
# Build (once) and cache a Horovod 0.28.1 wheel that works with torch >= 2.1.
#
# PyPI's 0.28.1 sdist compiles with C++14, which torch >= 2.1 headers reject; upstream fixed this
# after the release and never published it. We patch the sdist to C++17 and build against the torch
# already installed in the target virtualenv (hence --no-build-isolation). The wheel is cached outside
# the clone so a second run, or a fresh clone on the same machine, reuses it.
#
# Usage: scripts/build_horovod.sh PYTHON [WHEEL_DIR]
#   PYTHON     interpreter of the virtualenv that has torch installed
#   WHEEL_DIR  where the wheel is cached (default: ${XDG_CACHE_HOME:-~/.cache}/gauntlet/wheels)
set -euo pipefail

PYTHON=${1:?usage: build_horovod.sh PYTHON [WHEEL_DIR]}
WHEEL_DIR=${2:-${GAUNTLET_WHEEL_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/gauntlet/wheels}}
VERSION=0.28.1
TORCH_VERSION=$("$PYTHON" -c 'import torch; print(torch.__version__.split("+")[0])')
# The wheel links against one torch ABI: key the cache by torch version too, and by the GPU
# operations it was built with (HOROVOD_GPU_OPERATIONS=NCCL gives `+torch<ver>.nccl`).
GPU_OPS=${HOROVOD_GPU_OPERATIONS:-}
TAG="torch${TORCH_VERSION//./}${GPU_OPS:+.${GPU_OPS,,}}"
mkdir -p "$WHEEL_DIR"

existing=$(ls "$WHEEL_DIR"/horovod-$VERSION+$TAG-*.whl 2>/dev/null | head -1 || true)
if [[ -n "$existing" ]]; then
    echo "horovod: using cached wheel $existing"
    exit 0
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
echo "horovod: building $VERSION against torch $TORCH_VERSION (takes ~7 min on 2 cores, once)"
"$PYTHON" -m pip download -q --no-deps --no-binary :all: "horovod==$VERSION" -d "$work"
tar -xzf "$work"/horovod-$VERSION.tar.gz -C "$work"
src="$work/horovod-$VERSION"

sed -i 's/CMAKE_CXX_STANDARD 14/CMAKE_CXX_STANDARD 17/g; s/-std=c++14/-std=c++17/g' \
    "$src/CMakeLists.txt" "$src/horovod/torch/CMakeLists.txt"
sed -i 's/-std=c++11/-std=c++17/g' "$src/third_party/gloo/CMakeLists.txt"
grep -q 'CMAKE_CXX_STANDARD 17' "$src/CMakeLists.txt" || { echo "horovod: patch did not apply" >&2; exit 1; }
# A local version suffix records which torch the binary was built for.
sed -i "s/^__version__ = '$VERSION'/__version__ = '$VERSION+$TAG'/" "$src/horovod/__init__.py"

export CMAKE_POLICY_VERSION_MINIMUM=3.5 HOROVOD_WITH_PYTORCH=1 HOROVOD_WITH_GLOO=1 \
    HOROVOD_WITHOUT_MPI=1 HOROVOD_WITHOUT_TENSORFLOW=1 HOROVOD_WITHOUT_MXNET=1 \
    MAKEFLAGS="-j$(nproc)"
"$PYTHON" -m pip wheel --no-build-isolation --no-deps -w "$work/dist" "$src"
mv "$work"/dist/horovod-*.whl "$WHEEL_DIR"/
echo "horovod: cached $(ls "$WHEEL_DIR"/horovod-$VERSION+$TAG-*.whl)"
