#!/usr/bin/env bash
# The GPU checks as one command, for a machine with an NVIDIA GPU, CUDA's compiler (nvcc), CMake and a
# python3 that holds torch's CUDA build, and no package index: build Horovod with NCCL, run the GPU
# benchmark on one GPU, and train through the train step's own launcher (horovodrun) on that GPU.
#
#   scripts/gpu_check.sh --prepare   here, with an index: the Horovod sdist and the wheels that machine
#                                    lacks (the S3 client and moto's server, at this project's versions,
#                                    for Python 3.12) into .gpu/, which git ignores
#   scripts/gpu_check.sh             there, from a copy of the repository with .gpu/ in it
#
# What it prints, in order: the GPU (name, compute capability, driver) and nvcc's version; the Horovod
# build's settings (HOROVOD_* lines: NCCL home and link, CUDA home, architectures) and
# `horovod: nccl_built=True`; the benchmark's rows (samples/s, MFU and input-wait share of the worker's
# step against their targets, for rows on the device and prefetched from pinned memory) and its JSON;
# then pytest's line for the worker trained on the GPU by the train step's launcher. Everything is also
# written to $OUT/gpu_check.log when OUT is set, else .gpu/gpu_check.log.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
CACHE=$ROOT/.gpu
VERSION=0.28.1
grep -qxF '/.gpu/' .git/info/exclude 2>/dev/null || echo '/.gpu/' >> .git/info/exclude

if [[ "${1:-}" == --prepare ]]; then
    mkdir -p "$CACHE"
    python=$ROOT/.venv/bin/python
    "$python" -m pip download -q --no-deps --no-binary :all: "horovod==$VERSION" -d "$CACHE"
    # The versions this project's environment holds, with what they need, as wheels for Python 3.12.
    # moto's S3 and its server's Flask only (moto[server] would bring every service's libraries).
    mapfile -t pins < <("$python" -c 'import importlib.metadata as m
for name in ("boto3", "botocore", "moto", "flask", "flask-cors"):
    extra = "[s3]" if name == "moto" else ""
    print(f"{name}{extra}=={m.version(name)}")')
    "$python" -m pip download -q --only-binary=:all: --python-version 3.12 --implementation cp \
        --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
        -d "$CACHE" "${pins[@]}"
    echo "gpu_check: prepared $(ls "$CACHE" | wc -l) files, $(du -sh "$CACHE" | cut -f1), in .gpu/"
    exit 0
fi

command -v nvidia-smi >/dev/null || { echo "gpu_check: no nvidia-smi: run this on a machine with a GPU" >&2; exit 1; }
PYTHON=${PYTHON:-python3}
LOG=${OUT:-$CACHE}/gpu_check.log
mkdir -p "$(dirname "$LOG")"
exec > >(tee "$LOG") 2>&1
nvidia-smi --query-gpu=name,compute_cap,driver_version --format=csv,noheader
nvcc --version | tail -1
# The wheels --prepare fetched go into the interpreter's own environment (the machine is a scratch one),
# so moto_server lands beside it, where the tests look for it.
if compgen -G "$CACHE/*.whl" >/dev/null; then
    "$PYTHON" -m pip install -q --no-index --no-deps --no-compile "$CACHE"/*.whl
fi
export PYTHONPATH=$ROOT/src${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1

# 1. Horovod with NCCL, by the same script and patches as a host or the GPU image.
export HOROVOD_GPU_OPERATIONS=NCCL
[[ -f "$CACHE/horovod-$VERSION.tar.gz" ]] && export HOROVOD_SDIST=$CACHE/horovod-$VERSION.tar.gz
bash scripts/build_horovod.sh "$PYTHON" --print-env
bash scripts/build_horovod.sh "$PYTHON" "$CACHE/wheels"
"$PYTHON" -m pip install -q --no-deps --force-reinstall "$CACHE"/wheels/horovod-$VERSION+*.nccl-*.whl
"$PYTHON" -c 'import horovod.torch as hvd; print(f"horovod: nccl_built={bool(hvd.nccl_built())}")'

# 2. The worker's own step on one GPU: samples/s, MFU and input wait against their targets.
"$PYTHON" benchmarks/gpu_train.py --ranks 1

# 3. The worker trained on the GPU by the train step's launcher (rows resident, bf16 and fp32 runs).
"$PYTHON" -m pytest -q -p no:cacheprovider tests/unit/training/test_worker.py -k "trains_a_regression or under_bf16"
