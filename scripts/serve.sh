#!/usr/bin/env bash
# Set up and start the server on the embedded store. Extra arguments go to `dicomweb serve`
# (e.g. --port 8042 --data /srv/dicom).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/dicomweb serve "$@"
