#!/usr/bin/env bash
# The ez-wsi-dicomweb client's own virtual environment (.venv-ezwsi), for scripts/test.sh;
# see ezwsi-requirements.txt for why it is not in .venv. Quick when already installed.
# Never fails the run: when it cannot be installed the ez-wsi test FAILS (it does not skip).
set -uo pipefail
cd "$(dirname "$0")/../.."
requirements=tests/clients/ezwsi-requirements.txt
stamp=.venv-ezwsi/.installed
if [ ! -f "$stamp" ] || [ "$requirements" -nt "$stamp" ]; then
  { python3 -m venv .venv-ezwsi && .venv-ezwsi/bin/python -m pip install -q -r "$requirements" && touch "$stamp"; } \
    || echo "setup_ezwsi.sh: could not install ez-wsi-dicomweb; the ez-wsi test will fail" >&2
fi
