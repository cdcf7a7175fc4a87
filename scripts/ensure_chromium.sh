#!/usr/bin/env bash
# Make sure Debian's chromium is at /usr/bin/chromium for the browser tests (tests/test_browser.py).
# Playwright drives it through executable_path; `playwright install` cannot download browsers here.
set -euo pipefail
CHROMIUM=/usr/bin/chromium
if [ -x "$CHROMIUM" ]; then
    echo "ensure_chromium: $CHROMIUM present ($("$CHROMIUM" --version 2>/dev/null || echo 'version unknown'))"
    exit 0
fi
if [ "$(id -u)" != 0 ]; then
    echo "ensure_chromium: $CHROMIUM missing and not root: install it with 'sudo apt-get install -y chromium'" \
         "(the browser tests skip without it, and fail under CI=true)" >&2
    exit 0
fi
if ! command -v apt-get >/dev/null; then
    echo "ensure_chromium: $CHROMIUM missing and no apt-get: install chromium by hand" >&2
    exit 0
fi
echo "ensure_chromium: installing Debian's chromium (apt-get, about 40 s)"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq chromium >/dev/null
echo "ensure_chromium: installed $("$CHROMIUM" --version 2>/dev/null || echo "$CHROMIUM")"
