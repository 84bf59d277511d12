#!/usr/bin/env bash
# Build the CPU task image (`make image`): offline from the prepared wheelhouse, then print its id.
#
# Usage: scripts/build_image.sh [TAG]      (default TAG: gauntlet:cpu)
#   BASE_IMAGE   base for every stage (default: the Dockerfile's python:3.11-slim; CI uses the
#                debootstrap stand-in from scripts/make_base_image.sh)
#   WHEELHOUSE=0 skip the wheelhouse and let the image install from the package index
# The last stdout line is `GAUNTLET_IMAGE <tag> <image id> <repo digest or ->`; the id is what task
# containers record as GAUNTLET_IMAGE_DIGEST (a local image has no registry digest until pushed).
set -euo pipefail
cd "$(dirname "$0")/.."

TAG=${1:-gauntlet:cpu}
args=(--target cpu -t "$TAG")
[[ -n "${BASE_IMAGE:-}" ]] && args+=(--build-arg "BASE_IMAGE=$BASE_IMAGE")
if [[ "${WHEELHOUSE:-1}" != 0 ]]; then
    scripts/prepare_wheelhouse.sh
else
    rm -rf wheelhouse
fi

started=$(date +%s%N)
docker build "${args[@]}" . >&2
elapsed_ms=$(( ($(date +%s%N) - started) / 1000000 ))
id=$(docker image inspect --format '{{.Id}}' "$TAG")
digest=$(docker image inspect --format '{{if .RepoDigests}}{{index .RepoDigests 0}}{{else}}-{{end}}' "$TAG")
printf 'image: %s built in %d.%03d s, %s MB\n' "$TAG" $((elapsed_ms / 1000)) $((elapsed_ms % 1000)) \
    "$(( $(docker image inspect --format '{{.Size}}' "$TAG") / 1000000 ))" >&2
echo "GAUNTLET_IMAGE $TAG $id $digest"
