"""Extended query tag definitions in SQLite: the ``extended_tag`` table of the index's file."""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import TypeVar

from dicomcore.threads import in_thread
from indexing.extended_tag_store import ExtendedTagExistsError, check_can_add
from indexing.extended_tags import ExtendedTag, QueryStatus
from indexing.sqlite.schema import EXTENDED_TAG_SCHEMA

T = TypeVar("T")



class SqliteExtendedTagStore:
    def __init__(self, database: Path) -> None:
        self.database = database
        self._local = threading.local()
        self._connection().executescript(EXTENDED_TAG_SCHEMA)

    def _connection(self) -> sqlite3.Connection:
        connection = getattr(self._local, "connection", None)
        if connection is None:
            connection = sqlite3.connect(self.database, timeout=30, isolation_level=None, check_same_thread=False)
            connection.execute("PRAGMA journal_mode=WAL")
            self._local.connection = connection
        return connection

    async def _run(self, work: Callable[[sqlite3.Connection], T]) -> T:
        return await in_thread(lambda: work(self._connection()))

    async def add(self, tags: list[ExtendedTag]) -> None:
        def insert(connection: sqlite3.Connection) -> None:
            connection.execute("BEGIN IMMEDIATE")
            try:
                current = [ExtendedTag.from_json(json.loads(body))
                           for (body,) in connection.execute("SELECT body FROM extended_tag")]
                check_can_add(current, tags)  # in the write transaction: two racing POSTs are serialized
                for tag in tags:
                    connection.execute("INSERT INTO extended_tag (path, body) VALUES (?, ?)",
                                       (tag.path, json.dumps(tag.to_json())))
            except sqlite3.IntegrityError as exc:
                connection.execute("ROLLBACK")
                raise ExtendedTagExistsError(str(exc)) from None
            except Exception:
                connection.execute("ROLLBACK")
                raise
            connection.execute("COMMIT")

        await self._run(insert)

    async def all(self) -> list[ExtendedTag]:
        return await self._run(read_tags)

    async def save(self, tag: ExtendedTag) -> None:
        await self._run(lambda c: c.execute("UPDATE extended_tag SET body = ? WHERE path = ?",
                                            (json.dumps(tag.to_json()), tag.path)))

    async def remove(self, path: str) -> None:
        def delete(connection: sqlite3.Connection) -> None:
            connection.execute("DELETE FROM extended_tag_error WHERE path = ?", (path,))
            connection.execute("DELETE FROM extended_tag WHERE path = ?", (path,))

        await self._run(delete)

    async def add_errors(self, path: str, errors: list[dict[str, str]]) -> None:
        await self._run(lambda c: insert_errors(c, path, errors))

    async def errors(self, path: str, limit: int, offset: int) -> list[dict[str, str]]:
        rows = await self._run(lambda c: c.execute(
            "SELECT body FROM extended_tag_error WHERE path = ? ORDER BY seq LIMIT ? OFFSET ?",
            (path, limit, offset)).fetchall())
        return [json.loads(row[0]) for row in rows]

    async def close(self) -> None:
        connection = getattr(self._local, "connection", None)
        if connection is not None:
            connection.close()
            self._local.connection = None


def read_tags(connection: sqlite3.Connection) -> list[ExtendedTag]:
    """Every definition, its ``error_count`` counted from the error rows: an instance
    recorded twice (when stored while its tag was added, then by the reindex) counts once."""
    rows = connection.execute(
        "SELECT body, (SELECT count(*) FROM extended_tag_error AS e WHERE e.path = t.path)"
        " FROM extended_tag AS t ORDER BY path").fetchall()
    return [replace(ExtendedTag.from_json(json.loads(body)), error_count=count) for body, count in rows]


def insert_errors(connection: sqlite3.Connection, path: str, errors: list[dict[str, str]]) -> None:
    """Record errors of a tag (one row per instance; recording one again replaces it)."""
    connection.executemany("INSERT INTO extended_tag_error (path, sop_uid, body) VALUES (?, ?, ?)",
                           [(path, error["sopInstanceUid"], json.dumps(error)) for error in errors])


def disable_with_errors(connection: sqlite3.Connection, path: str, errors: list[dict[str, str]]) -> None:
    """Record errors found while storing an instance and disable the tag's queries (inside
    the caller's transaction: the index store's add)."""
    insert_errors(connection, path, errors)
    connection.execute("UPDATE extended_tag SET body = json_set(body, '$.query_status', ?) WHERE path = ?",
                       (QueryStatus.DISABLED.value, path))
