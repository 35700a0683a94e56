"""Operation state in SQLite: the ``operation`` table of the index's database file.

One row per operation; the state is a JSON body (its shape belongs to
:class:`~indexing.operation_store.OperationState`), with the columns lists filter and sort
on beside it. ``cancel_requested`` is a column of its own that :meth:`save` never writes,
so a runner saving progress cannot lose a user's cancel request.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from indexing.operation_store import OperationState, Status
from indexing.sqlite.connections import ThreadConnections

T = TypeVar("T")

SCHEMA = """
CREATE TABLE IF NOT EXISTS operation (
    operation_id TEXT PRIMARY KEY,
    type TEXT NOT NULL,
    status TEXT NOT NULL,
    created_time TEXT NOT NULL,
    body TEXT NOT NULL,
    cancel_requested INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS operation_by_time ON operation (created_time, operation_id);
"""

_TERMINAL = tuple(status.value for status in Status if status.terminal)


class SqliteOperationStore:
    def __init__(self, database: Path) -> None:
        self.database = database
        self._connections = ThreadConnections(database)
        self._connections.get().executescript(SCHEMA)

    async def _run(self, work: Callable[[sqlite3.Connection], T]) -> T:
        return await self._connections.run(work)

    async def create(self, state: OperationState) -> None:
        def insert(connection: sqlite3.Connection) -> None:
            try:
                connection.execute(
                    "INSERT INTO operation (operation_id, type, status, created_time, body) VALUES (?,?,?,?,?)",
                    (state.operation_id, state.type, state.status.value, state.created_time,
                     json.dumps(state.to_json())))
            except sqlite3.IntegrityError as exc:
                raise FileExistsError(state.operation_id) from exc

        await self._run(insert)

    async def get(self, operation_id: str) -> OperationState | None:
        row = await self._run(lambda c: c.execute(
            "SELECT body FROM operation WHERE operation_id = ?", (operation_id,)).fetchone())
        return None if row is None else OperationState.from_json(json.loads(row[0]))

    async def save(self, state: OperationState) -> None:
        await self._run(lambda c: c.execute(
            "UPDATE operation SET status = ?, body = ? WHERE operation_id = ?",
            (state.status.value, json.dumps(state.to_json()), state.operation_id)))

    async def recent(self, *, status: Status | None = None, type: str | None = None,
                   limit: int = 100, offset: int = 0) -> list[OperationState]:
        where, params = ["1 = 1"], list[Any]()
        if status is not None:
            where.append("status = ?")
            params.append(status.value)
        if type is not None:
            where.append("type = ?")
            params.append(type)
        sql = (f"SELECT body FROM operation WHERE {' AND '.join(where)}"
               " ORDER BY created_time DESC, operation_id DESC LIMIT ? OFFSET ?")
        rows = await self._run(lambda c: c.execute(sql, (*params, limit, offset)).fetchall())
        return [OperationState.from_json(json.loads(row[0])) for row in rows]

    async def unfinished(self) -> list[OperationState]:
        marks = ",".join("?" * len(_TERMINAL))
        rows = await self._run(lambda c: c.execute(
            f"SELECT body FROM operation WHERE status NOT IN ({marks}) ORDER BY created_time, operation_id",
            _TERMINAL).fetchall())
        return [OperationState.from_json(json.loads(row[0])) for row in rows]

    async def request_cancel(self, operation_id: str) -> None:
        await self._run(lambda c: c.execute(
            "UPDATE operation SET cancel_requested = 1 WHERE operation_id = ?", (operation_id,)))

    async def cancel_requested(self, operation_id: str) -> bool:
        row = await self._run(lambda c: c.execute(
            "SELECT cancel_requested FROM operation WHERE operation_id = ?", (operation_id,)).fetchone())
        return bool(row and row[0])

    async def close(self) -> None:
        self._connections.close()
