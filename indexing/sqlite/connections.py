"""One SQLite connection per thread, for the stores that run short statements (the change
feed, the operations): the connection is opened in the thread that first needs it and kept.
(The index store pools its connections instead: see index_store.py.)"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from dicomcore.threads import in_thread
from indexing.sqlite.schema import connect

T = TypeVar("T")


class ThreadConnections:
    def __init__(self, database: Path, *, named_rows: bool = False) -> None:
        self.database = database
        self.named_rows = named_rows
        self._local = threading.local()

    def open(self) -> sqlite3.Connection:
        """A new connection set up as every index connection is (:func:`schema.connect`: WAL,
        autocommit, busy timeout, the WAL size limit)."""
        connection = connect(self.database)
        if self.named_rows:
            connection.row_factory = sqlite3.Row
        return connection

    def get(self) -> sqlite3.Connection:
        """This thread's connection."""
        connection: sqlite3.Connection | None = getattr(self._local, "connection", None)
        if connection is None:
            connection = self._local.connection = self.open()
        return connection

    async def run(self, work: Callable[[sqlite3.Connection], T]) -> T:
        """``work`` with a worker thread's connection, in that thread."""
        return await in_thread(lambda: work(self.get()))

    def close(self) -> None:
        """Close the calling thread's connection (the others close with their threads)."""
        connection = getattr(self._local, "connection", None)
        if connection is not None:
            connection.close()
            self._local.connection = None
