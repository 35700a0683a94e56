"""The local staging folder both blob stores spool uploads to, and its cleaning.

A crash while a request is being spooled leaves its staging file behind (nothing else
refers to it); ``verify`` removes those older than a grace period, which must be longer
than any upload in progress takes.
"""

from __future__ import annotations

import contextlib
import os
import time
from pathlib import Path


def stale_files(folder: Path, older_than_seconds: float) -> list[Path]:
    """Regular files directly in ``folder`` not modified for ``older_than_seconds``."""
    cutoff = time.time() - older_than_seconds
    found = []
    with contextlib.suppress(FileNotFoundError), os.scandir(folder) as entries:
        for entry in entries:
            with contextlib.suppress(FileNotFoundError):
                if entry.is_file(follow_symlinks=False) and entry.stat(follow_symlinks=False).st_mtime < cutoff:
                    found.append(Path(entry.path))
    return found


def remove_stale(folder: Path, older_than_seconds: float, dry_run: bool) -> int:
    """Remove (or, with ``dry_run``, count) the stale files of ``folder``."""
    stale = stale_files(folder, older_than_seconds)
    if not dry_run:
        for path in stale:
            path.unlink(missing_ok=True)
    return len(stale)
