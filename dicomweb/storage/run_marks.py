"""Did every earlier server process on this data folder stop cleanly? (Start-up reconciliation.)

Each server process keeps a mark, ``DATA/running/<id>``, locked with ``flock`` for as
long as it runs, and removes it when it stops cleanly. A mark that is still there but no
longer locked belongs to a process that died without stopping (``kill -9``, a power cut,
an out-of-memory kill): the kernel drops a dead process's locks. Only then is there
something a crash can have left (a placed but unindexed file, an unfinished delete), so only
then does the start-up reconciliation need to walk the whole store (docs/operations.md,
"Start-up at scale"). The same lock-file pattern as the operation locks
(``usecases/operations/local_runner.py``).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import uuid
from pathlib import Path


class RunMarks:
    """This process's mark, and the marks dead processes left."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.dead: list[Path] = []
        """The marks of processes that died, found by :meth:`start`."""
        self._own: Path | None = None
        self._fd: int | None = None

    def start(self) -> bool:
        """Take this process's mark; ``True`` when an earlier process may not have stopped
        cleanly (it left a dead mark, or the store is older than the marks)."""
        first_time = not self.folder.is_dir()
        self.folder.mkdir(parents=True, exist_ok=True)
        self.dead = self._dead_marks()
        name = uuid.uuid4().hex
        # Locked under a hidden name, then renamed (the lock stays with the file): another
        # process never sees this mark unlocked and takes it for a dead one.
        hidden, own = self.folder / f".{name}", self.folder / name
        fd = os.open(hidden, os.O_CREAT | os.O_RDWR | os.O_CLOEXEC, 0o600)
        fcntl.flock(fd, fcntl.LOCK_EX)
        os.rename(hidden, own)
        self._own, self._fd = own, fd
        return bool(self.dead) or (first_time and _holds_data(self.folder.parent))

    def _dead_marks(self) -> list[Path]:
        """Marks no live process holds (a running sibling worker's mark is locked)."""
        dead = []
        for mark in self.folder.iterdir():
            if mark.name.startswith("."):
                continue
            try:
                fd = os.open(mark, os.O_RDWR | os.O_CLOEXEC)
            except FileNotFoundError:
                continue  # removed by its process meanwhile
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                continue  # a running process holds it
            finally:
                os.close(fd)
            dead.append(mark)
        return dead

    def forget_dead(self) -> None:
        """Remove the dead marks found at start, once reconciliation has repaired what their
        processes left (until then a restart reconciles again)."""
        for mark in self.dead:
            mark.unlink(missing_ok=True)
        self.dead = []

    def stop(self) -> None:
        """A clean stop: remove this process's mark."""
        if self._own is not None:
            self._own.unlink(missing_ok=True)
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._fd)
        self._own = self._fd = None


def _holds_data(data_dir: Path) -> bool:
    """A store written before the marks existed (its index is there): its history is unknown."""
    return (data_dir / "index.sqlite").exists() or (data_dir / "blobs").is_dir()
