"""The change feed in SQLite (the embedded default), in the index's database file.

Order without gaps: an entry's sequence is assigned inside a ``BEGIN IMMEDIATE``
transaction, and SQLite admits one writer at a time across threads and processes, so
entries commit in sequence order. A reader paging by sequence can therefore never see
k+1 before k has committed (the failure the leading open server had with a counter).
``AUTOINCREMENT`` numbers are not reused after a delete, and a rolled-back insert does
not consume one.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from changefeed.port import Action, ChangeEntry, State
from dicomcore.clock import utc_now
from indexing.records import entry_state, next_timestamp
from indexing.sqlite.connections import ThreadConnections
from indexing.sqlite.schema import FEED_SCHEMA, write_transaction

T = TypeVar("T")

COLUMNS = (
    "sequence, entry_id, timestamp, action, state, study_uid, series_uid, sop_uid, "
    "sop_class_uid, instance_key, incarnation"
)


def _entry(row: sqlite3.Row) -> ChangeEntry:
    return ChangeEntry(
        entry_id=row["entry_id"],
        action=Action(row["action"]),
        study_uid=row["study_uid"],
        series_uid=row["series_uid"],
        sop_uid=row["sop_uid"],
        sop_class_uid=row["sop_class_uid"],
        instance_key=row["instance_key"],
        incarnation=row["incarnation"],
        sequence=row["sequence"],
        timestamp=row["timestamp"],
        state=State(row["state"]),
    )


def append_entry(connection: sqlite3.Connection, entry: ChangeEntry) -> ChangeEntry:
    """Append ``entry`` inside the caller's write transaction (the index commits a record
    and its entry together this way), or return the existing entry with its id."""
    reader = connection.cursor()
    reader.row_factory = sqlite3.Row  # the index's connections return tuples
    existing = reader.execute(f"SELECT {COLUMNS} FROM changefeed WHERE entry_id = ?", (entry.entry_id,)).fetchone()
    if existing is not None:
        return _entry(existing)
    last = connection.execute("SELECT max(timestamp) FROM changefeed").fetchone()[0]
    timestamp = next_timestamp(utc_now(), last)
    state = entry_state(entry.action)
    if entry.action is Action.DELETE:
        connection.execute(
            "UPDATE changefeed SET state = 'deleted' WHERE instance_key = ? AND state = 'current'",
            (entry.instance_key,),
        )
    cursor = connection.execute(
        "INSERT INTO changefeed (entry_id, timestamp, action, state, study_uid, series_uid, sop_uid,"
        " sop_class_uid, instance_key, incarnation) VALUES (?,?,?,?,?,?,?,?,?,?)",
        (entry.entry_id, timestamp, entry.action.value, state.value, entry.study_uid, entry.series_uid,
         entry.sop_uid, entry.sop_class_uid, entry.instance_key, entry.incarnation),
    )
    assert cursor.lastrowid is not None
    entry.sequence, entry.timestamp, entry.state = cursor.lastrowid, timestamp, state
    return entry


class SqliteChangeFeedStore:
    def __init__(self, database: Path) -> None:
        self.database = database
        self._connections = ThreadConnections(database, named_rows=True)
        with self._connections.open() as connection:
            connection.executescript(FEED_SCHEMA)

    async def _run(self, work: Callable[[sqlite3.Connection], T]) -> T:
        return await self._connections.run(work)

    # -- writes -------------------------------------------------------------------------

    def _append(self, connection: sqlite3.Connection, entry: ChangeEntry) -> ChangeEntry:
        with write_transaction(connection):
            return append_entry(connection, entry)

    async def append(self, entry: ChangeEntry) -> ChangeEntry:
        return await self._run(lambda c: self._append(c, entry))

    # -- reads --------------------------------------------------------------------------

    async def read(self, after: int, limit: int) -> list[ChangeEntry]:
        rows = await self._run(lambda c: c.execute(
            f"SELECT {COLUMNS} FROM changefeed WHERE sequence > ? ORDER BY sequence LIMIT ?",
            (after, limit)).fetchall())
        return [_entry(row) for row in rows]

    async def read_window(self, start: str | None, end: str | None, offset: int, limit: int) -> list[ChangeEntry]:
        rows = await self._run(lambda c: c.execute(
            f"SELECT {COLUMNS} FROM changefeed WHERE timestamp >= ? AND timestamp < ?"
            " ORDER BY sequence LIMIT ? OFFSET ?",
            (start or "", end or "9999", limit, offset)).fetchall())
        return [_entry(row) for row in rows]

    async def latest(self) -> ChangeEntry | None:
        row = await self._run(lambda c: c.execute(
            f"SELECT {COLUMNS} FROM changefeed ORDER BY sequence DESC LIMIT 1").fetchone())
        return None if row is None else _entry(row)

    async def close(self) -> None:
        self._connections.close()
