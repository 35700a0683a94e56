#!/usr/bin/env bash
# Set up and start the Azure emulators for a local server: Azurite (Blob Storage) on :10000 and
# the Cosmos DB test server on :8081 (npm packages pinned in package.json; `npm ci` on first use).
# Prints the settings that point a server at them; Ctrl-C stops both. Arguments go to
# tests/support/emulators.py (--blob-port, --cosmos-port).
set -euo pipefail
cd "$(dirname "$0")/.."
command -v node >/dev/null && command -v npm >/dev/null \
  || { echo "emulators.sh: the emulators need node and npm" >&2; exit 1; }
bash scripts/setup.sh azure
exec .venv/bin/python -m tests.support.emulators "$@"
