#!/usr/bin/env bash
# Create .venv (if missing) and install the project with the given extras, e.g. "test,azure".
set -euo pipefail
cd "$(dirname "$0")/.."
extras="${1:-}"
python3 -m venv .venv 2>/dev/null || { echo "python3 -m venv failed: install python3-venv" >&2; exit 1; }
. .venv/bin/activate
stamp=".venv/.installed-${extras:-base}"
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  python -m pip install -q --upgrade pip
  python -m pip install -q -e ".${extras:+[$extras]}"
  touch "$stamp"
fi
