#!/usr/bin/env bash
# Set up and run the whole test suite, the linter, and the benchmark smoke run.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh test,azure
. .venv/bin/activate
ruff check .
python -m pytest -q "$@"
