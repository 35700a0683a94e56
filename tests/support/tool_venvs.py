"""Virtual environments built for one test from a list of requirements, cached between runs.

Used where a test needs packages apart from the project's own: the Functions app's
``requirements.txt`` alone (to prove it holds what the app imports) and checkov (whose pins,
e.g. ``cachetools<6``, conflict with the test dependencies). Each environment lives under
``~/.cache/dicomweb-venvs/<name>-<hash of the requirements and Python>``, is built once (pip's
own cache makes a rebuild cheap) and is reused until its requirements change.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

CACHE = Path(os.environ.get("DICOMWEB_VENV_CACHE", Path.home() / ".cache" / "dicomweb-venvs"))
_INSTALL_TIMEOUT = 900


def cached_venv(name: str, requirements: list[str], *, fingerprint: str = "") -> Path:
    """The Python of a venv holding ``requirements`` (pip arguments), built if missing;
    ``fingerprint``: what else it depends on (the text of a requirements file)."""
    key = hashlib.sha256("\n".join([sys.version, fingerprint, *requirements]).encode()).hexdigest()[:16]
    target = CACHE / f"{name}-{key}"
    python = target / "bin" / "python"
    CACHE.mkdir(parents=True, exist_ok=True)
    with open(CACHE / f"{name}-{key}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one builder; concurrent test runs wait for it
        if (target / ".ready").exists():
            return python
        shutil.rmtree(target, ignore_errors=True)
        subprocess.run([sys.executable, "-m", "venv", str(target)], check=True)
        # The pip a venv starts with can be old enough to fail on today's dependency graphs.
        subprocess.run([str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check", "--upgrade", "pip"],
                       check=True, capture_output=True, timeout=_INSTALL_TIMEOUT)
        result = subprocess.run([str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check",
                                 *requirements], capture_output=True, text=True, timeout=_INSTALL_TIMEOUT)
        if result.returncode != 0:
            raise RuntimeError(f"pip install {' '.join(requirements)} failed:\n{result.stdout}\n{result.stderr}")
        (target / ".ready").touch()
    return python
