"""The OHIF viewer the server serves at /viewer/, installed for the browser tests."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
FETCH_SCRIPT = REPO / "scripts" / "fetch_viewer.sh"


def install_viewer() -> Path:
    """The viewer's folder; fetched here too, so plain ``pytest`` works like test.sh."""
    result = subprocess.run(["bash", str(FETCH_SCRIPT)], cwd=REPO, capture_output=True, text=True, timeout=300)
    if result.returncode != 0:
        pytest.fail(f"could not install the viewer: {result.stderr.strip()}")
    return REPO / result.stdout.strip().splitlines()[-1]
