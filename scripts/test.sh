#!/usr/bin/env bash
# Set up and run the linter and the whole test suite (arguments go to pytest).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh test,azure
# The Azure emulators (Azurite, the Cosmos test server) for the Azure-backend tests;
# tests/support/emulators.py does the same when pytest is run directly.
if command -v npm >/dev/null && { [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; }; then
  npm ci --no-audit --no-fund
fi
# The viewer browser test's Debian chromium (the viewer itself comes with setup.sh).
bash tests/clients/setup_browser.sh
# The ez-wsi-dicomweb client's own virtual environment (its dependencies conflict with .venv's).
bash tests/clients/setup_ezwsi.sh
. .venv/bin/activate
ruff check .
lint-imports          # the layers of docs/architecture.md (contracts in pyproject.toml)
mypy                  # the type checker ([tool.mypy] in pyproject.toml)
python -m pytest -q "$@"
