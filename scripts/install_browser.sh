#!/usr/bin/env bash
# Debian's Chromium and ChromeDriver for the UI test (tests/stack/test_stack_ui.py); no browser
# download of its own is needed. Installs only what is missing.
set -euo pipefail
if command -v chromium >/dev/null && command -v chromedriver >/dev/null; then
    exit 0
fi
if [[ $(id -u) -ne 0 ]]; then
    echo "install_browser: run 'sudo apt-get install -y chromium chromium-driver' first" >&2
    exit 1
fi
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null
chromium --version
