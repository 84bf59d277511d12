# gauntlet task images: one image runs any step as `python -m gauntlet <step> ...`.
#
#   CPU (default):  scripts/build_image.sh                      (or: docker build --target cpu -t gauntlet:cpu .)
#   GPU:            docker build --target gpu -t gauntlet:gpu .          (CUDA 12.8; for CUDA 13 see gpu-builder)
#
# Stages: `builder` makes the CPU virtualenv (installing from ./wheelhouse with no index when it holds
# wheels, building the patched Horovod wheel only if the wheelhouse lacks one), `cpu` copies that
# virtualenv into a compiler-free image; `gpu-builder` and `gpu` do the same on CUDA + NCCL with torch's
# CUDA build and Horovod's NCCL operations. Dependencies are installed before the source is copied, so
# a source change rebuilds only the last thin layers. No credentials or endpoints are baked in: S3
# settings arrive as environment at run time.
#
# Written for both the classic builder and BuildKit (no BuildKit-only syntax), and no `# syntax=`
# line, which would make BuildKit pull a frontend image.

ARG BASE_IMAGE=python:3.11-slim
# The GPU images need CUDA's compiler to build Horovod, and only the runtime after; Ubuntu 24.04 brings
# a current GCC (13), for which scripts/build_horovod.sh patches Horovod's sources. cuDNN and NCCL come
# with torch's CUDA wheels.
ARG CUDA_DEVEL_IMAGE=nvidia/cuda:12.8.1-devel-ubuntu24.04
ARG CUDA_RUNTIME_IMAGE=nvidia/cuda:12.8.1-runtime-ubuntu24.04

# ---------------------------------------------------------------------------------------------------
FROM ${BASE_IMAGE} AS builder
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
WORKDIR /build
# `wheelhouse*` matches the prepared ./wheelhouse (its wheels land in /build) or nothing at all.
# The steps' packages are requirements.lock's (scripts/image_requirements.py picks them), each file checked
# against the lock's hashes; without a wheelhouse, torch's CPU wheel comes from the PyTorch wheel page.
COPY pyproject.toml requirements.lock scripts/image_requirements.py scripts/build_horovod.sh wheelhouse* /build/
RUN python3 -m venv /opt/venv \
    && python3 /build/image_requirements.py --hashes /build > /build/requirements-image.txt \
    && if ls /build/*.whl >/dev/null 2>&1; then source="--no-index --find-links /build"; \
       else source="--find-links https://download.pytorch.org/whl/cpu/torch/"; fi \
    && /opt/venv/bin/pip install --require-hashes --no-deps $source -r /build/requirements-image.txt
# Horovod: the wheelhouse's patched wheel if there is one, else build it here (needs a compiler and
# PyPI; both stay in this stage).
RUN if ls /build/horovod-*.whl >/dev/null 2>&1; then \
        /opt/venv/bin/pip install --no-index --no-deps /build/horovod-*.whl; \
    else \
        packages="g++ make cmake"; \
        python3 -c 'import os, sys, sysconfig; sys.exit(not os.path.exists(sysconfig.get_paths()["include"] + "/Python.h"))' \
            || packages="$packages python3.11-dev"; \
        apt-get update && apt-get install -y --no-install-recommends $packages \
        && /opt/venv/bin/pip install setuptools wheel \
        && bash /build/build_horovod.sh /opt/venv/bin/python /build/horovod \
        && /opt/venv/bin/pip install --no-deps /build/horovod/horovod-*.whl \
        && rm -rf /var/lib/apt/lists/*; \
    fi \
    && /opt/venv/bin/pip check \
    && /opt/venv/bin/python -c "import horovod.torch, torch, sklearn, great_expectations, boto3, pyarrow, matplotlib"

# ---------------------------------------------------------------------------------------------------
FROM ${BASE_IMAGE} AS cpu
ARG GAUNTLET_UID=10001
# A fixed numeric uid lets Kubernetes verify runAsNonRoot without resolving names. The user has a
# shell because a multi-host run's ranks are started over ssh (sshd runs commands through it).
RUN useradd --uid ${GAUNTLET_UID} --user-group --create-home --home-dir /home/gauntlet --shell /bin/sh gauntlet \
    && mkdir -p /run/sshd
ENV VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    PYTHONPATH=/app/src \
    GAUNTLET_HOME=/app \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    MPLCONFIGDIR=/tmp/matplotlib \
    HOME=/home/gauntlet
COPY --from=builder /opt/venv /opt/venv
WORKDIR /app
# A multi-host worker's sshd (`--entrypoint gauntlet-sshd`), with the run's key handed over at start.
COPY scripts/worker_sshd.sh /usr/local/bin/gauntlet-sshd
# Data-shaped files, then the code: the two layers a change usually touches, both small.
COPY include/ /app/include/
COPY src/gauntlet/ /app/src/gauntlet/
USER ${GAUNTLET_UID}:${GAUNTLET_UID}
LABEL org.opencontainers.image.title="gauntlet-task" \
      org.opencontainers.image.description="gauntlet pipeline step (CPU): python -m gauntlet <step>"
ENTRYPOINT ["python", "-m", "gauntlet"]
CMD ["--help"]

# ---------------------------------------------------------------------------------------------------
FROM ${CUDA_DEVEL_IMAGE} AS gpu-builder
# torch's CUDA wheels for the CUDA version of the base images. For CUDA 13:
#   --build-arg CUDA_DEVEL_IMAGE=nvidia/cuda:13.0.1-devel-ubuntu24.04
#   --build-arg CUDA_RUNTIME_IMAGE=nvidia/cuda:13.0.1-runtime-ubuntu24.04
#   --build-arg TORCH_INDEX_URL=https://download.pytorch.org/whl/cu130
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cu128
ARG TORCH_VERSION=2.13.0
# Architectures both CUDA 12.8 and 13 compile for (13 dropped those before 7.5): Turing to Blackwell.
ARG CUDA_ARCHITECTURES=75,80,86,89,90,100,120
ENV DEBIAN_FRONTEND=noninteractive PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
# Ubuntu 24.04 ships Python 3.12; deadsnakes has the 3.11 the project runs on.
RUN apt-get update \
    && apt-get install -y --no-install-recommends software-properties-common gpg-agent \
    && add-apt-repository -y ppa:deadsnakes/ppa \
    && apt-get update \
    && apt-get install -y --no-install-recommends python3.11 python3.11-venv python3.11-dev g++ make cmake git \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /build
COPY pyproject.toml requirements.lock scripts/image_requirements.py scripts/build_horovod.sh /build/
RUN python3.11 -m venv /opt/venv \
    && /opt/venv/bin/pip install --index-url "$TORCH_INDEX_URL" "torch==${TORCH_VERSION}" \
    && python3.11 /build/image_requirements.py /build | grep -v '^torch==' > /build/requirements-image.txt \
    && /opt/venv/bin/pip install -r /build/requirements-image.txt \
    && /opt/venv/bin/pip install setuptools wheel
# Horovod with NCCL allreduce/broadcast on GPU and Gloo as the controller (no MPI in the image), built by
# the same script as on a host: it patches the sources (C++17, <string> for GCC 13), takes NCCL from
# the system if it has one, else from torch's nvidia-nccl wheel (the one torch itself loads), finds
# CUDA from nvcc, and tags the wheel `+torch<ver>.nccl`. No GPU is visible while an image builds, so
# the architectures are named here. --print-env logs the settings it resolved.
ENV HOROVOD_GPU_OPERATIONS=NCCL HOROVOD_CUDA_HOME=/usr/local/cuda
RUN export HOROVOD_BUILD_CUDA_CC_LIST="$CUDA_ARCHITECTURES" \
    && bash /build/build_horovod.sh /opt/venv/bin/python --print-env \
    && bash /build/build_horovod.sh /opt/venv/bin/python /build/horovod \
    && /opt/venv/bin/pip install --no-deps /build/horovod/horovod-*.whl \
    && /opt/venv/bin/python -c "import horovod.torch as hvd; assert hvd.nccl_built(), 'Horovod built without NCCL'"

# ---------------------------------------------------------------------------------------------------
FROM ${CUDA_RUNTIME_IMAGE} AS gpu
ARG GAUNTLET_UID=10001
ENV DEBIAN_FRONTEND=noninteractive
# The interpreter the virtualenv was made with (same path as in gpu-builder). NCCL comes with torch's
# wheel, which `import torch` loads before Horovod needs it.
RUN apt-get update \
    && apt-get install -y --no-install-recommends software-properties-common gpg-agent \
    && add-apt-repository -y ppa:deadsnakes/ppa \
    && apt-get update \
    && apt-get install -y --no-install-recommends \
        python3.11 python3.11-venv procps ca-certificates openssh-client openssh-server \
    && apt-get purge -y software-properties-common gpg-agent && apt-get autoremove -y \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --uid ${GAUNTLET_UID} --user-group --create-home --home-dir /home/gauntlet --shell /bin/bash gauntlet
# Multi-node training (MPIJob): workers run sshd as the non-root user, so on a port above 1024 and with
# the key pair the MPI operator mounts at /home/gauntlet/.ssh as host key; the launcher's horovodrun
# reaches them with the same key (GAUNTLET_HOROVOD_SSH_PORT=2222).
RUN mkdir -p /etc/ssh/gauntlet /run/sshd \
    && printf '%s\n' 'Port 2222' 'HostKey /home/gauntlet/.ssh/id_rsa' 'PidFile /tmp/sshd.pid' \
        'AuthorizedKeysFile /home/gauntlet/.ssh/authorized_keys' 'PasswordAuthentication no' 'UsePAM no' \
        'StrictModes no' > /etc/ssh/gauntlet/sshd_config \
    && printf '%s\n' 'Host *' '    Port 2222' '    IdentityFile /home/gauntlet/.ssh/id_rsa' \
        '    StrictHostKeyChecking no' '    UserKnownHostsFile /dev/null' >> /etc/ssh/ssh_config
ENV VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:/usr/local/nvidia/bin:/usr/local/cuda/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    PYTHONPATH=/app/src \
    GAUNTLET_HOME=/app \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    MPLCONFIGDIR=/tmp/matplotlib \
    HOME=/home/gauntlet \
    NVIDIA_VISIBLE_DEVICES=all \
    NVIDIA_DRIVER_CAPABILITIES=compute,utility
COPY --from=gpu-builder /opt/venv /opt/venv
# Horovod's NCCL operations load here too, with this stage's CUDA runtime (no GPU needed to import).
RUN /opt/venv/bin/python -c "import horovod.torch as hvd; assert hvd.nccl_built(), 'Horovod built without NCCL'"
WORKDIR /app
COPY include/ /app/include/
COPY src/gauntlet/ /app/src/gauntlet/
USER ${GAUNTLET_UID}:${GAUNTLET_UID}
LABEL org.opencontainers.image.title="gauntlet-task-gpu" \
      org.opencontainers.image.description="gauntlet pipeline step (CUDA + NCCL): python -m gauntlet <step>"
ENTRYPOINT ["python", "-m", "gauntlet"]
CMD ["--help"]
