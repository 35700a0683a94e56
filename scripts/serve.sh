#!/usr/bin/env bash
# Set up and start the server. Extra arguments go to `dicomweb serve` (e.g. --port 8042 --data
# /srv/dicom). The environment chooses the store (README, "Configure"); with the Azure adapters
# (DICOMWEB_BLOB_STORE=azure or DICOMWEB_INDEX_STORE=cosmos) their SDKs are installed too.
set -euo pipefail
cd "$(dirname "$0")/.."
extras=""
if [ "${DICOMWEB_BLOB_STORE:-}" = azure ] || [ "${DICOMWEB_INDEX_STORE:-}" = cosmos ]; then
  extras="azure"
fi
bash scripts/setup.sh "$extras"
exec .venv/bin/dicomweb serve "$@"
