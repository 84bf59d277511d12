#!/usr/bin/env bash
# The CPU task image for the multi-host Horovod tests (tests/scale/test_multihost_horovod.py), built
# the way scripts/ci/docker_e2e.sh builds it: Debian's docker engine (installed and started if
# missing), the debootstrap stand-in base image (rebuilt only when its package list changed), then
# the image from the project's Dockerfile (Docker's layer cache makes an unchanged image a no-op).
#
# Usage: scripts/ci/multihost.sh [TAG]   (default TAG: gauntlet:cpu). The last stdout line is
# build_image.sh's `GAUNTLET_IMAGE <tag> <image id> <digest>`.
set -euo pipefail
cd "$(dirname "$0")/../.."
TAG=${1:-gauntlet:cpu}
BASE=${BASE_IMAGE:-gauntlet-base:bookworm}

if ! command -v dockerd >/dev/null || ! command -v debootstrap >/dev/null; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker.io debootstrap >/dev/null
fi
if ! docker info >/dev/null 2>&1; then
    # No init system here: start the daemon (it keeps running for later jobs).
    nohup dockerd >/tmp/dockerd.log 2>&1 &
    for _ in $(seq 60); do docker info >/dev/null 2>&1 && break; sleep 1; done
fi
docker info --format 'docker {{.ServerVersion}}, storage {{.Driver}}' >&2 || { echo "dockerd did not start" >&2; exit 1; }
started=$(date +%s)
scripts/make_base_image.sh "$BASE" >&2
BASE_IMAGE=$BASE scripts/build_image.sh "$TAG"
echo "multihost image: ready in $(( $(date +%s) - started ))s" >&2
