#!/usr/bin/env bash
# Make a stand-in for `python:3.11-slim` from Debian packages, for sites that cannot pull images.
#
# debootstrap builds a minimal Debian bookworm root with Python 3.11 and venv support, and
# `docker import` turns it into an image. The result is cached: if the tag already exists with the
# same package list (kept in its `gauntlet.base.packages` label), nothing is rebuilt (pass --force to
# rebuild it); a changed list rebuilds it.
#
# Packages come from the Debian mirror this machine's apt already uses (its sources.list and
# sources.list.d), so the script follows however the host is configured; DEBIAN_MIRROR overrides it.
#
# Usage: scripts/make_base_image.sh [TAG] [--force]     (default TAG: gauntlet-base:bookworm)
#        scripts/make_base_image.sh --print-mirror     (print the mirror it would use, and exit)
set -euo pipefail

TAG=gauntlet-base:bookworm
SUITE=bookworm
FORCE=0
PRINT_MIRROR=0
APT_ETC=${GAUNTLET_APT_ETC:-/etc/apt}  # another apt configuration folder, for tests
for arg in "$@"; do
    case "$arg" in
        --force) FORCE=1 ;;
        --print-mirror) PRINT_MIRROR=1 ;;
        *) TAG=$arg ;;
    esac
done

# The first enabled `deb` source for $1 (a suite name, or a regex of suite names) with the main
# component: deb822 stanzas (*.sources) first, as current Debian writes them, then one-line entries.
apt_source_for() {
    local suites=$1 file
    for file in "$APT_ETC"/sources.list.d/*.sources; do
        [[ -f $file ]] || continue
        awk -v want="^($suites)\$" '
            function flush(   n, i, s, c, has_main, u) {
                if (types ~ /(^|[ \t])deb([ \t]|$)/ && enabled != "no" && uris != "") {
                    n = split(comps, c, /[ \t]+/); has_main = 0
                    for (i = 1; i <= n; i++) if (c[i] == "main") has_main = 1
                    n = split(suites, s, /[ \t]+/)
                    for (i = 1; i <= n && has_main; i++) if (s[i] ~ want) { split(uris, u, /[ \t]+/); print u[1]; found = 1; exit }
                }
                types = suites = comps = uris = enabled = ""
            }
            /^[ \t]*#/ { next }
            /^[ \t]*$/ { flush(); next }
            /^[A-Za-z-]+:/ {
                key = tolower($1); sub(/:$/, "", key); $1 = ""; value = $0; sub(/^[ \t]+/, "", value)
                if (key == "types") types = value; else if (key == "uris") uris = value
                else if (key == "suites") suites = value; else if (key == "components") comps = value
                else if (key == "enabled") enabled = tolower(value)
            }
            END { if (!found) flush() }' "$file" | head -1 | grep . && return 0
    done
    for file in "$APT_ETC"/sources.list "$APT_ETC"/sources.list.d/*.list; do
        [[ -f $file ]] || continue
        awk -v want="^($suites)\$" '
            $1 == "deb" {
                i = 2
                if ($i ~ /^\[/) { while (i <= NF && $i !~ /\]$/) i++; i++ }
                if ($(i + 1) !~ want) next
                for (j = i + 2; j <= NF; j++) if ($j == "main") { print $i; exit }
            }' "$file" | head -1 | grep . && return 0
    done
    return 1
}

host_mirror() {
    # The suite itself; else any Debian release's main archive (the same mirror serves every suite).
    apt_source_for "$SUITE" \
        || apt_source_for "oldstable|stable|testing|unstable|sid|bullseye|bookworm|trixie|forky|duke" \
        || {
            echo "base image: no Debian apt source with the main component in $APT_ETC/sources.list or" \
                "$APT_ETC/sources.list.d/; set DEBIAN_MIRROR to the Debian mirror to use" >&2
            return 1
        }
}

MIRROR=${DEBIAN_MIRROR:-$(host_mirror)}
MIRROR=${MIRROR%/}
if [[ $PRINT_MIRROR == 1 ]]; then
    echo "$MIRROR"
    exit 0
fi
# What the task image needs at run time beyond libc: the interpreter, venv (with its bundled pip),
# certificates for real S3 endpoints, ps (horovodrun inspects its child processes), and ssh with
# sshd (horovodrun starts the ranks of other hosts over ssh, as an MPIJob's launcher does).
PACKAGES=python3.11,python3.11-venv,python3-venv,ca-certificates,procps,openssh-client,openssh-server

if [[ $FORCE == 0 ]] && docker image inspect "$TAG" >/dev/null 2>&1; then
    built_with=$(docker image inspect --format '{{index .Config.Labels "gauntlet.base.packages"}}' "$TAG" 2>/dev/null || true)
    if [[ $built_with == "$PACKAGES" ]]; then
        echo "base image: $TAG exists ($(docker image inspect --format '{{.Id}}' "$TAG")), not rebuilt"
        exit 0
    fi
    echo "base image: $TAG was built with packages '${built_with:-unknown}', rebuilding with '$PACKAGES'"
fi
command -v debootstrap >/dev/null || { echo "base image: debootstrap is not installed (apt-get install debootstrap)" >&2; exit 1; }

root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
echo "base image: debootstrap $SUITE ($PACKAGES) from $MIRROR"
debootstrap --variant=minbase --include="$PACKAGES" "$SUITE" "$root" "$MIRROR" >/tmp/gauntlet-debootstrap.log 2>&1 \
    || { tail -20 /tmp/gauntlet-debootstrap.log >&2; exit 1; }
# Keep the image small and stateless: no package lists, caches or logs.
rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin "$root"/var/cache/apt/archives/*.deb \
    "$root"/var/log/* "$root"/usr/share/doc/* "$root"/usr/share/man/*
# sshd's host keys are made where it starts (a per-run key), never shipped in an image.
rm -f "$root"/etc/ssh/ssh_host_*
# Match the official image's contract: `python`/`python3` on PATH.
ln -sf python3.11 "$root/usr/bin/python"
tar -C "$root" -c . | docker import \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'ENV LANG=C.UTF-8' \
    --change 'CMD ["python3"]' \
    --change "LABEL gauntlet.base.packages=$PACKAGES" \
    - "$TAG" >/dev/null
echo "base image: $TAG $(docker image inspect --format '{{.Id}} {{.Size}}' "$TAG") bytes"
