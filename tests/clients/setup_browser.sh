#!/usr/bin/env bash
# Prerequisites of the viewer browser test (tests/clients/test_ohif.py), for scripts/test.sh:
# Debian's chromium (we never download a browser: playwright-core drives the system one) and
# the viewer (scripts/fetch_viewer.sh; setup.sh installs it too). playwright-core itself comes with `npm ci`.
#
# Quick when already installed, and never fails the run: when something cannot be installed it
# says so, and the OHIF test then FAILS (it does not skip), so CI shows the gap instead of
# passing without a browser.
set -uo pipefail
cd "$(dirname "$0")/../.."

if [ ! -x /usr/bin/chromium ]; then
  if command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
    echo "setup_browser.sh: installing Debian chromium" >&2
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; } \
      || echo "setup_browser.sh: apt-get install chromium failed; the OHIF test will fail" >&2
  elif command -v apt-get >/dev/null && command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
    echo "setup_browser.sh: installing Debian chromium (sudo)" >&2
    { sudo -n apt-get update -qq && sudo -n env DEBIAN_FRONTEND=noninteractive \
        apt-get install -y -qq chromium >/dev/null; } \
      || echo "setup_browser.sh: apt-get install chromium failed; the OHIF test will fail" >&2
  else
    echo "setup_browser.sh: no /usr/bin/chromium and no apt-get as root; the OHIF test will fail" >&2
  fi
fi

if command -v npm >/dev/null; then
  bash scripts/fetch_viewer.sh >/dev/null || echo "setup_browser.sh: could not install the viewer; the viewer test will fail" >&2
else
  echo "setup_browser.sh: no npm; the viewer test will fail" >&2
fi
exit 0
