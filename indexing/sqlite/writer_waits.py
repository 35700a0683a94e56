"""How long the index's writers waited for each other, per server process.

A write takes two locks before its transaction (:mod:`indexing.sqlite.index_store`): the
process's own (its threads take turns) and the lock file shared by the processes of
``dicomweb serve --workers N``. Whether N processes scale is decided by these waits, so
each process counts them and logs one line when its index closes (the ``dicomweb.writers``
logger; ``dicomweb serve`` prints it on standard error at shutdown). No UIDs, no values:
counts and seconds only.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field

log = logging.getLogger("dicomweb.writers")


@dataclass
class WriterWaits:
    writes: int = 0
    queued_seconds: float = 0.0
    """Waiting for another thread of this process to finish its write."""
    locked_seconds: float = 0.0
    """Waiting for another process's writer (the lock file)."""
    longest_locked_seconds: float = 0.0
    held_seconds: float = 0.0
    """The transactions themselves, with both locks held."""
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def note(self, queued: float, locked: float, held: float) -> None:
        with self._lock:
            self.writes += 1
            self.queued_seconds += queued
            self.locked_seconds += locked
            self.longest_locked_seconds = max(self.longest_locked_seconds, locked)
            self.held_seconds += held

    def line(self) -> str:
        return (f"index writes: {self.writes}; waited {self.queued_seconds:.2f} s for this process's writers, "
                f"{self.locked_seconds:.2f} s for other processes' (longest {1000 * self.longest_locked_seconds:.0f} "
                f"ms); transactions {self.held_seconds:.2f} s")

    def log(self) -> None:
        if self.writes:
            log.info(self.line())
