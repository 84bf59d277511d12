#!/usr/bin/env bash
# Make a stand-in for `python:3.11-slim` from Debian packages, for sites that cannot pull images.
#
# debootstrap builds a minimal Debian bookworm root with Python 3.11 and venv support, and
# `docker import` turns it into an image. The result is cached: if the tag already exists,
# nothing is rebuilt (pass --force to rebuild it).
#
# Usage: scripts/make_base_image.sh [TAG] [--force]     (default TAG: gauntlet-base:bookworm)
set -euo pipefail

TAG=gauntlet-base:bookworm
FORCE=0
for arg in "$@"; do
    case "$arg" in
        --force) FORCE=1 ;;
        *) TAG=$arg ;;
    esac
done
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
# What the task image needs at run time beyond libc: the interpreter, venv (with its bundled pip),
# certificates for real S3 endpoints, and ps (horovodrun inspects its child processes).
PACKAGES=python3.11,python3.11-venv,python3-venv,ca-certificates,procps

if [[ $FORCE == 0 ]] && docker image inspect "$TAG" >/dev/null 2>&1; then
    echo "base image: $TAG exists ($(docker image inspect --format '{{.Id}}' "$TAG")), not rebuilt"
    exit 0
fi
command -v debootstrap >/dev/null || { echo "base image: debootstrap is not installed (apt-get install debootstrap)" >&2; exit 1; }

root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
echo "base image: debootstrap bookworm ($PACKAGES) from $MIRROR"
debootstrap --variant=minbase --include="$PACKAGES" bookworm "$root" "$MIRROR" >/tmp/gauntlet-debootstrap.log 2>&1 \
    || { tail -20 /tmp/gauntlet-debootstrap.log >&2; exit 1; }
# Keep the image small and stateless: no package lists, caches or logs.
rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin "$root"/var/cache/apt/archives/*.deb \
    "$root"/var/log/* "$root"/usr/share/doc/* "$root"/usr/share/man/*
# Match the official image's contract: `python`/`python3` on PATH.
ln -sf python3.11 "$root/usr/bin/python"
tar -C "$root" -c . | docker import \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'ENV LANG=C.UTF-8' \
    --change 'CMD ["python3"]' \
    - "$TAG" >/dev/null
echo "base image: $TAG $(docker image inspect --format '{{.Id}} {{.Size}}' "$TAG") bytes"
