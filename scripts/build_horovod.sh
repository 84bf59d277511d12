#!/usr/bin/env bash
# Build (once) and cache a Horovod 0.28.1 wheel that works with torch >= 2.1.
#
# PyPI's 0.28.1 sdist compiles with C++14, which torch >= 2.1 headers reject; upstream fixed this
# after the release and never published it. We patch the sdist to C++17 and build against the torch
# already installed in the target virtualenv (hence --no-build-isolation). The wheel is cached outside
# the clone so a second run, or a fresh clone on the same machine, reuses it.
#
# With HOROVOD_GPU_OPERATIONS=NCCL it builds for GPUs on a current CUDA (12/13) host as well: NCCL is
# taken from the system (libnccl-dev) or else from the `nvidia-nccl` wheel torch depends on, the CUDA
# toolkit from nvcc's location, and the architectures from the local GPUs when HOROVOD_BUILD_CUDA_CC_LIST
# is not set.
#
# Usage: scripts/build_horovod.sh PYTHON [WHEEL_DIR]
#        scripts/build_horovod.sh PYTHON --print-env   (the build settings it would use, then exit)
#        scripts/build_horovod.sh --patch SRC         (apply the source patches to an unpacked sdist)
#   PYTHON     interpreter of the virtualenv that has torch installed
#   WHEEL_DIR  where the wheel is cached (default: ${XDG_CACHE_HOME:-~/.cache}/gauntlet/wheels)
#   HOROVOD_SDIST=PATH  build from this horovod-0.28.1.tar.gz instead of downloading it (a host with no
#              index, e.g. a GPU machine prepared by scripts/gpu_check.sh --prepare)
set -euo pipefail

# The sdist as released does not build with torch >= 2.1 (C++14) nor with a current GCC (group_table.h
# uses std::string without including <string>, which older libstdc++ headers pulled in transitively).
patch_source() {
    local src=$1
    sed -i 's/CMAKE_CXX_STANDARD 14/CMAKE_CXX_STANDARD 17/g; s/-std=c++14/-std=c++17/g' \
        "$src/CMakeLists.txt" "$src/horovod/torch/CMakeLists.txt"
    sed -i 's/-std=c++11/-std=c++17/g' "$src/third_party/gloo/CMakeLists.txt"
    grep -q '#include <string>' "$src/horovod/common/group_table.h" \
        || sed -i '0,/^#include/s//#include <string>\n#include/' "$src/horovod/common/group_table.h"
    grep -q 'CMAKE_CXX_STANDARD 17' "$src/CMakeLists.txt" \
        && grep -q '#include <string>' "$src/horovod/common/group_table.h" \
        || { echo "horovod: patch did not apply to $src" >&2; return 1; }
}

# NCCL for a GPU build when none is named: the system's, else the nvidia-nccl wheel's. The wheel ships
# only libnccl.so.2 (no unversioned link the linker looks for), so a folder of links stands in for it.
resolve_nccl() {
    local links=$1 wheel
    [[ -n "${HOROVOD_NCCL_HOME:-}" ]] && return 0
    if ldconfig -p 2>/dev/null | grep -q 'libnccl\.so '; then
        return 0
    fi
    wheel=$("$PYTHON" -c 'import nvidia.nccl as m; print(list(m.__path__)[0])' 2>/dev/null || true)
    if [[ -z "$wheel" || ! -e "$wheel/lib/libnccl.so.2" ]]; then
        echo "horovod: HOROVOD_GPU_OPERATIONS=NCCL but no NCCL found (install libnccl-dev, the nvidia-nccl" \
            "wheel, or set HOROVOD_NCCL_HOME)" >&2
        return 1
    fi
    mkdir -p "$links/lib"
    ln -sfn "$wheel/include" "$links/include"
    ln -sf "$wheel/lib/libnccl.so.2" "$links/lib/libnccl.so.2"
    ln -sf "$wheel/lib/libnccl.so.2" "$links/lib/libnccl.so"
    export HOROVOD_NCCL_HOME=$links HOROVOD_NCCL_LINK=SHARED
}

resolve_gpu_settings() {
    local nvcc
    resolve_nccl "$1"
    if [[ -z "${HOROVOD_CUDA_HOME:-}" ]] && nvcc=$(command -v nvcc); then
        export HOROVOD_CUDA_HOME=$(dirname "$(dirname "$(readlink -f "$nvcc")")")
    fi
    # Horovod 0.28's default list starts at architectures CUDA 12 no longer compiles for.
    if [[ -z "${HOROVOD_BUILD_CUDA_CC_LIST:-}" ]] && command -v nvidia-smi >/dev/null; then
        HOROVOD_BUILD_CUDA_CC_LIST=$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader | tr -d '. ' \
            | sort -u | paste -sd, -)
        export HOROVOD_BUILD_CUDA_CC_LIST
    fi
}

if [[ "${1:-}" == --patch ]]; then
    patch_source "${2:?usage: build_horovod.sh --patch SRC}"
    exit 0
fi

PYTHON=${1:?usage: build_horovod.sh PYTHON [WHEEL_DIR]}
VERSION=0.28.1
if [[ "${2:-}" == --print-env ]]; then
    links=$(mktemp -d)
    [[ -n "${HOROVOD_GPU_OPERATIONS:-}" ]] && resolve_gpu_settings "$links/nccl"
    env | grep -E '^HOROVOD_' | sort || echo "horovod: no HOROVOD_ settings: a CPU build (Gloo)"
    exit 0
fi
WHEEL_DIR=${2:-${GAUNTLET_WHEEL_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/gauntlet/wheels}}
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
if [[ -n "${HOROVOD_SDIST:-}" ]]; then
    [[ -f "$HOROVOD_SDIST" ]] || { echo "horovod: HOROVOD_SDIST=$HOROVOD_SDIST is not a file" >&2; exit 1; }
    cp "$HOROVOD_SDIST" "$work/horovod-$VERSION.tar.gz"
else
    "$PYTHON" -m pip download -q --no-deps --no-binary :all: "horovod==$VERSION" -d "$work"
fi
tar -xzf "$work"/horovod-$VERSION.tar.gz -C "$work"
src="$work/horovod-$VERSION"

patch_source "$src"
[[ -n "$GPU_OPS" ]] && resolve_gpu_settings "$work/nccl"
# A local version suffix records which torch the binary was built for.
sed -i "s/^__version__ = '$VERSION'/__version__ = '$VERSION+$TAG'/" "$src/horovod/__init__.py"

export CMAKE_POLICY_VERSION_MINIMUM=3.5 HOROVOD_WITH_PYTORCH=1 HOROVOD_WITH_GLOO=1 \
    HOROVOD_WITHOUT_MPI=1 HOROVOD_WITHOUT_TENSORFLOW=1 HOROVOD_WITHOUT_MXNET=1 \
    MAKEFLAGS="-j$(nproc)"
"$PYTHON" -m pip wheel --no-build-isolation --no-deps -w "$work/dist" "$src"
mv "$work"/dist/horovod-*.whl "$WHEEL_DIR"/
echo "horovod: cached $(ls "$WHEEL_DIR"/horovod-$VERSION+$TAG-*.whl)"
