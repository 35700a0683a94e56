#!/usr/bin/env bash
# Create .venv (if missing) and install the project with the given extras, e.g. "test,azure";
# then the viewer the server serves at /viewer/ (scripts/fetch_viewer.sh), when node and npm are
# here. Without them the server still runs, and its start page says how to get the viewer.
set -euo pipefail
cd "$(dirname "$0")/.."
extras="${1:-}"
# (Only when missing: `venv` on an existing folder reinstalls pip, ~15 s on every start.)
[ -x .venv/bin/python ] || python3 -m venv .venv 2>/dev/null \
  || { echo "python3 -m venv failed: install python3-venv" >&2; exit 1; }
. .venv/bin/activate
# Installed already when an up-to-date install had every extra asked for (test,azure covers azure).
covered() {
  local stamp have extra missing
  for stamp in .venv/.installed-*; do
    { [ -f "$stamp" ] && [ ! pyproject.toml -nt "$stamp" ]; } || continue
    have=",${stamp#.venv/.installed-},"
    missing=0
    for extra in ${extras//,/ }; do
      case "$have" in *",$extra,"*) ;; *) missing=1 ;; esac
    done
    [ "$missing" = 0 ] && return 0
  done
  return 1
}
if ! covered; then
  python -m pip install -q --upgrade pip
  python -m pip install -q -e ".${extras:+[$extras]}"
  touch ".venv/.installed-${extras:-base}"
fi
if command -v node >/dev/null && command -v npm >/dev/null; then
  bash scripts/fetch_viewer.sh >/dev/null \
    || echo "setup.sh: could not install the viewer (see above); the server runs without it" >&2
else
  echo "setup.sh: node and npm not found: the server runs, without the viewer at /viewer/" >&2
fi
