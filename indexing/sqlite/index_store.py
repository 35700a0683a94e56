"""The embedded index: :class:`~indexing.port.IndexStore` on one SQLite file.

SQLite calls are blocking, so each runs in a worker thread. Connections are pooled
rather than kept per thread: AnyIO retires idle worker threads, and a per-thread
connection would be left open behind each one. A connection is used by one thread at a
time. Writes are single ``BEGIN IMMEDIATE`` transactions, so counters and Modalities in
Study stay right when several threads or server processes add to one study at once.

Schema: :mod:`indexing.sqlite.schema`; searching: :mod:`indexing.sqlite.search`.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

from changefeed.port import Action
from dicomcore.capacity import InsufficientStorageError
from dicomcore.threads import in_thread
from indexing import stored_json
from indexing.attributes import AttributeTable, Level, standard_table
from indexing.extended_tags import ExtendedTag, extend_table, value_errors
from indexing.port import DicomJson, InstanceHeader, InstanceRecord, StoreCounts
from indexing.query import Query
from indexing.records import (
    ADDED_TO_HEADER,
    change_entry,
    level_json,
    match_keys,
    record_from_json,
    series_modality,
    with_identity,
)
from indexing.results import instance_number
from indexing.sqlite.extended_tag_store import disable_with_errors
from indexing.sqlite.feed_store import append_entry
from indexing.sqlite.number_keys import migrate_number_keys
from indexing.sqlite.schema import connect, create_schema, value_table, word_table, write_transaction
from indexing.sqlite.search import search
from indexing.sqlite.writer_waits import WriterWaits
from indexing.summaries import (
    MODALITIES_IN_STUDY_TAG,
    SOP_CLASSES_IN_STUDY_TAG,
    modalities_in_study,
    recounted_sop_classes,
    with_sop_class,
)

T = TypeVar("T")
log = logging.getLogger(__name__)

_SQLITE_FULL = 13
"""SQLite's result code for "database or disk is full"."""

_CHECKPOINT_EVERY = 25
"""Writes of one process between the WAL checkpoints it runs: SQLite's automatic one came
every 1,000 WAL pages, and a STOW commit adds ~35-40 (measured: 450 instances of one series,
the WAL file's size every 50)."""

_IDLE_CONNECTIONS = 8
"""Connections kept open between calls; more are opened under load and closed after."""

_INSTANCE_FROM = """
FROM instance AS i
JOIN instance_json AS ij ON ij.pk = i.pk
JOIN series AS se ON se.pk = i.series_pk
JOIN study AS s ON s.pk = i.study_pk
"""
_HEADER_SQL = "json_remove(json_extract(ij.record, '$.attributes'), {})".format(
    ", ".join(f"'$.\"{tag}\"'" for tag in ADDED_TO_HEADER))
"""The header's JSON text (:func:`indexing.records.header_of`), from the stored record."""
_KEYS_PER_QUERY = 500
"""Instance keys per ``IN (...)`` lookup (well under SQLite's bound on parameters)."""
_INSTANCE_ORDER = " ORDER BY i.series_pk, i.instance_number IS NULL, i.instance_number, i.sop_uid"


class SqliteIndexStore:
    """The index in ``database``; the file may be shared with other processes."""

    def __init__(self, database: Path, table: AttributeTable | None = None) -> None:
        # No I/O here: the app builds its adapters before any event loop runs.
        self._database = Path(database)
        self._table = table or standard_table()
        self._idle: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        self._write_lock = threading.Lock()
        self._schema_ready = False
        self._closed = False
        self._extended_bodies: tuple[str, ...] = ()
        self._extended_tags: list[ExtendedTag] = []
        self._writer_lock_fd: int | None = None
        self.writer_waits = WriterWaits()
        self._writes_since_checkpoint = 0
        self._checkpointer: threading.Thread | None = None
        """The thread running a WAL checkpoint, while one runs (:meth:`_checkpoint_when_due`)."""

    # -- the port -----------------------------------------------------------------------

    async def add_instance(self, record: InstanceRecord, *, fresh: bool = True, frames: str | None = None) -> bool:
        """``frames``: the instance's frame index, committed with the record
        (``indexing.port.FrameIndexHolder``)."""
        return await self._run_write(self._add, record, fresh, frames)

    def add_instance_blocking(self, record: InstanceRecord, *, fresh: bool = True, frames: str | None = None) -> bool:
        """:meth:`add_instance` in the calling thread (``indexing.port.BlockingIndexWrites``)."""
        return self._with_write_lock(self._add, record, fresh, frames)

    async def get_instance(self, study_uid: str, series_uid: str, sop_uid: str) -> InstanceRecord | None:
        records = await self._run(self._list, study_uid, series_uid, sop_uid)
        return records[0] if records else None

    async def get_instance_by_key(self, instance_key: str) -> InstanceRecord | None:
        return await self._run(self._by_key, instance_key)

    async def list_instances(
        self, study_uid: str, series_uid: str | None = None, sop_uid: str | None = None, *,
        attributes: bool = True,
    ) -> list[InstanceRecord]:
        return await self._run(self._list, study_uid, series_uid, sop_uid, attributes)

    async def list_headers(
        self, study_uid: str, series_uid: str | None = None, sop_uid: str | None = None
    ) -> list[InstanceHeader]:
        return await self._run(self._headers, study_uid, series_uid, sop_uid)

    async def remove_instances(
        self, study_uid: str, series_uid: str | None = None, sop_uid: str | None = None, *, owner: str = ""
    ) -> list[InstanceRecord]:
        return await self._run_write(self._remove, study_uid, series_uid, sop_uid, owner)

    async def pending_deletes(
        self, study_uid: str | None = None, series_uid: str | None = None, sop_uid: str | None = None
    ) -> list[InstanceRecord]:
        conditions, params = ["state = 'pending'"], []
        for column, value in (("study_uid", study_uid), ("series_uid", series_uid), ("sop_uid", sop_uid)):
            if value is not None:
                conditions.append(f"{column} = ?")
                params.append(value)
        sql = f"SELECT record FROM tombstone WHERE {' AND '.join(conditions)} ORDER BY instance_key"
        rows = await self._run(lambda c: c.execute(sql, params).fetchall())
        return [_record(text) for (text,) in rows]

    async def claim_delete(self, record: InstanceRecord, owner: str, lease_seconds: float) -> bool:
        instance_key = record.instance_key

        def claim(connection: sqlite3.Connection) -> bool:
            now = time.time()
            with write_transaction(connection):
                cursor = connection.execute(
                    "UPDATE tombstone SET owner = ?, claimed_at = ? WHERE instance_key = ? AND state = 'pending'"
                    " AND (owner = ? OR claimed_at < ?)",
                    (owner, now, instance_key, owner, now - lease_seconds))
            return cursor.rowcount == 1

        return await self._run_write(claim)

    async def finish_delete(self, record: InstanceRecord) -> None:
        def finish(connection: sqlite3.Connection) -> None:
            with write_transaction(connection):
                connection.execute("UPDATE tombstone SET state = 'done' WHERE instance_key = ?",
                                   (record.instance_key,))

        await self._run_write(finish)

    async def is_deleted(self, instance_key: str) -> bool:
        return await self._run(
            lambda c: _exists(c, "SELECT 1 FROM tombstone WHERE instance_key = ?", instance_key))

    async def records_after(self, instance_key: str, limit: int) -> list[InstanceRecord]:
        rows = await self._run(lambda c: c.execute(
            "SELECT ij.record FROM instance AS i JOIN instance_json AS ij ON ij.pk = i.pk"
            " WHERE i.instance_key > ? ORDER BY i.instance_key LIMIT ?", (instance_key, limit)).fetchall())
        return [_record(text) for (text,) in rows]

    async def set_digest(self, instance_key: str, sha256: str) -> None:
        def update(connection: sqlite3.Connection) -> None:
            with write_transaction(connection):
                connection.execute(
                    "UPDATE instance_json SET record = json_set(record, '$.sha256', ?)"
                    " WHERE pk = (SELECT pk FROM instance WHERE instance_key = ?)", (sha256, instance_key))

        await self._run_write(update)

    async def add_instances(self, records: list[InstanceRecord], frames: list[str] | None = None) -> list[bool]:
        return await self._run_write(self._add_many, records, frames)

    def _add_many(self, connection: sqlite3.Connection, records: list[InstanceRecord],
                  frames: list[str] | None = None) -> list[bool]:
        # One transaction (each _add joins it): one commit and one trip for a whole batch.
        each: list[str | None] = list(frames) if frames is not None else [None] * len(records)
        with write_transaction(connection):
            return [self._add(connection, record, True, index) for record, index in zip(records, each, strict=True)]

    async def frame_index(self, instance_key: str) -> str | None:
        row = await self._run(lambda c: c.execute(
            "SELECT f.frames FROM instance AS i JOIN instance_frames AS f ON f.pk = i.pk WHERE i.instance_key = ?",
            (instance_key,)).fetchone())
        return row[0] if row else None

    async def headers_by_key(self, instance_keys: list[str]) -> list[str | None]:
        return await self._run(self._headers_by_key, instance_keys)

    async def reconcile_entries(self, *, repair: bool) -> int:
        # The scan reads every record (minutes at a million instances): it runs without the
        # write lock, so STOWs go on meanwhile; what it finds is checked again under the lock.
        missing = await self._run(self._missing_entries)
        if repair and missing:
            await self._run_write(self._append_missing, missing)
        return len(missing)

    async def reindex(self, records: list[InstanceRecord], table: AttributeTable) -> None:
        """Add the match keys of ``table``'s attributes for already indexed ``records``
        (an extended tag's reindex); keys already present are kept (INSERT OR IGNORE)."""
        await self._run_write(self._reindex, records, table)

    async def drop_values(self, tag: str) -> None:
        """Remove every match key of ``tag`` (a deleted extended tag)."""
        def drop(connection: sqlite3.Connection) -> None:
            with write_transaction(connection):
                for level in Level:
                    connection.execute(f"DELETE FROM {value_table(level)} WHERE tag = ?", (tag,))
                    connection.execute(f"DELETE FROM {word_table(level)} WHERE tag = ?", (tag,))

        await self._run_write(drop)

    def _read_extended_tags(self, connection: sqlite3.Connection) -> None:
        """Index with the extended tags committed now (read inside the add's write
        transaction, which serializes with the one adding a tag, in any process: an add
        committed after a tag was added carries it; one committed before is seen by the
        reindex that starts after). Rebuilt only when the definitions change."""
        bodies = tuple(body for (body,) in connection.execute("SELECT body FROM extended_tag ORDER BY path"))
        if bodies != self._extended_bodies:
            self._extended_bodies = bodies
            self._extended_tags = [tag for body in bodies if (tag := ExtendedTag.from_json(json.loads(body))).indexed]
            self._table = extend_table(self._extended_tags)

    def _record_value_errors(self, connection: sqlite3.Connection, record: InstanceRecord) -> None:
        """A value invalid for an indexed extended tag's VR is recorded as an error of the
        tag, which becomes disabled: the same as when the reindex finds it."""
        for tag, error in value_errors(self._extended_tags, record):
            disable_with_errors(connection, tag.path, [error])

    def _reindex(self, connection: sqlite3.Connection, records: list[InstanceRecord], table: AttributeTable) -> None:
        saved, self._table = self._table, table
        try:
            with write_transaction(connection):
                filled: set[tuple[Level, int, str]] = set()  # study/series elements set in this page
                for record in records:
                    row = connection.execute(
                        "SELECT instance.pk, instance.series_pk, instance.study_pk FROM instance"
                        " WHERE instance_key = ?", (record.instance_key,)).fetchone()
                    if row is None:
                        continue  # deleted meanwhile
                    dataset = with_identity(record)
                    for level, pk in zip((Level.INSTANCE, Level.SERIES, Level.STUDY), row, strict=True):
                        self._index_values(connection, level, pk, dataset)
                        _add_to_level_json(connection, level, pk, level_json(table, level, dataset), filled)
        finally:
            self._table = saved

    async def search(self, query: Query) -> list[DicomJson]:
        return await self._run(search, query)

    async def counts(self) -> StoreCounts:
        return await self._run(_counts)

    async def close(self) -> None:
        with self._write_lock, self._lock:  # no writer is holding the lock file's lock
            self._closed = True
            checkpointer = self._checkpointer  # none starts from now on
            idle, self._idle = self._idle, []
            lock_fd, self._writer_lock_fd = self._writer_lock_fd, None
        if lock_fd is not None:
            os.close(lock_fd)
        for connection in idle:
            connection.close()
        if checkpointer is not None:  # it closes its own connection (``_release``)
            await in_thread(checkpointer.join)
        self.writer_waits.log()

    # -- connections --------------------------------------------------------------------

    async def _run(self, work: Callable[..., T], *args: Any) -> T:
        return await in_thread(self._with_connection, work, *args)

    async def _run_write(self, work: Callable[..., T], *args: Any) -> T:
        return await in_thread(self._with_write_lock, work, *args)

    def _with_write_lock(self, work: Callable[..., T], *args: Any) -> T:
        try:
            return self._locked_write(work, *args)
        finally:
            self._checkpoint_when_due()

    def _checkpoint_when_due(self) -> None:
        """Every ``_CHECKPOINT_EVERY`` writes, copy the WAL into the database, with no lock
        held and on a thread of its own: SQLite's automatic checkpoint ran inside the commit
        that crossed 1,000 pages, fsyncs included, while this process held the writers' lock
        file, so every other writer waited for those fsyncs; run inline after the write, it
        still held up the request that happened to be the 25th (docs/performance.md). A
        passive checkpoint never blocks a writer; one that could not finish is simply run
        again. Never raises: the write it follows has its own outcome."""
        with self._lock:
            self._writes_since_checkpoint += 1
            if (self._writes_since_checkpoint < _CHECKPOINT_EVERY or self._closed
                    or self._checkpointer is not None):
                return
            self._writes_since_checkpoint = 0
            self._checkpointer = threading.Thread(target=self._checkpoint, name="wal-checkpoint", daemon=True)
            self._checkpointer.start()

    def _checkpoint(self) -> None:
        try:
            self._with_connection(_checkpoint)
        except (sqlite3.Error, RuntimeError):  # (RuntimeError: closed meanwhile) the next one catches up
            log.debug("WAL checkpoint failed", exc_info=True)
        finally:
            with self._lock:
                self._checkpointer = None

    def _locked_write(self, work: Callable[..., T], *args: Any) -> T:
        # Writers of this process queue here rather than on SQLite's lock: its busy
        # handler sleeps in steps of up to 100 ms, which made concurrent adds crawl.
        # Other processes still meet at BEGIN IMMEDIATE and wait via busy_timeout.
        asked = time.perf_counter()
        with self._write_lock:
            queued = time.perf_counter()
            with self._other_processes_writing():
                locked = time.perf_counter()
                try:
                    return self._with_connection(work, *args)
                except sqlite3.OperationalError as exc:
                    if exc.sqlite_errorcode == _SQLITE_FULL:
                        raise InsufficientStorageError(exc.sqlite_errorcode,
                                                       "the index database's disk is full") from exc
                    raise
                finally:
                    self.writer_waits.note(queued - asked, locked - queued, time.perf_counter() - locked)

    @contextlib.contextmanager
    def _other_processes_writing(self) -> Iterator[None]:
        """Wait for the writers of the other server processes (``--workers N``) on a lock file.

        ``flock`` hands the lock on the moment a commit ends, where SQLite's busy handler
        polls with sleeps growing to 100 ms: with it, two workers storing at once were
        slower than one (docs/performance.md). SQLite's own locking still guards the data;
        this only orders the writers. The kernel drops the lock of a process that dies."""
        fd = self._writer_lock()
        if fd is None:
            yield
            return
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)

    def _writer_lock(self) -> int | None:
        with self._lock:
            if self._writer_lock_fd is None and not self._closed:
                path = self._database.with_name(self._database.name + ".writers")
                with contextlib.suppress(OSError):  # e.g. a read-only folder: SQLite's busy handler alone
                    path.parent.mkdir(parents=True, exist_ok=True)
                    self._writer_lock_fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            return self._writer_lock_fd

    def _with_connection(self, work: Callable[..., T], *args: Any) -> T:
        connection = self._acquire()
        try:
            return work(connection, *args)
        finally:
            self._release(connection)

    def _acquire(self) -> sqlite3.Connection:
        with self._lock:
            if self._closed:
                raise RuntimeError("the index store is closed")
            if self._idle:
                return self._idle.pop()
        connection = connect(self._database)
        connection.execute("PRAGMA wal_autocheckpoint = 0")  # checkpoints off the writers' lock: _checkpoint_when_due
        with self._lock:
            if not self._schema_ready:
                create_schema(connection)
                with write_transaction(connection):
                    migrate_number_keys(connection)
                self._schema_ready = True
        return connection

    def _release(self, connection: sqlite3.Connection) -> None:
        if connection.in_transaction:
            connection.execute("ROLLBACK")
        with self._lock:
            if not self._closed and len(self._idle) < _IDLE_CONNECTIONS:
                self._idle.append(connection)
                return
        connection.close()

    # -- writes -------------------------------------------------------------------------

    def _add(self, connection: sqlite3.Connection, record: InstanceRecord, fresh: bool,
             frames: str | None = None) -> bool:
        dataset = with_identity(record)
        with write_transaction(connection):
            self._read_extended_tags(connection)
            if _exists(connection, "SELECT 1 FROM instance WHERE instance_key = ?", record.instance_key):
                return False
            if _exists(connection, "SELECT 1 FROM tombstone WHERE instance_key = ?", record.instance_key):
                if not fresh:
                    return False  # deleted: a late event or a repair must not bring it back
                connection.execute("DELETE FROM tombstone WHERE instance_key = ?", (record.instance_key,))
            study_pk = self._ensure_study(connection, record.study_uid, dataset)
            series_pk, new_series = self._ensure_series(connection, study_pk, record.series_uid, dataset)
            if not new_series and _exists(
                connection,
                "SELECT 1 FROM instance WHERE series_pk = ? AND sop_uid = ?",
                series_pk,
                record.sop_uid,
            ):
                return False  # same UIDs stored under another key: already indexed
            self._insert_instance(connection, study_pk, series_pk, record, dataset, frames)
            self._record_value_errors(connection, record)
            _add_to_count(connection, "series", "instance_count", series_pk, 1)
            _add_to_count(connection, "study", "instance_count", study_pk, 1)
            _add_to_count(connection, "study", "series_count", study_pk, int(new_series))
            self._add_sop_class(connection, study_pk, record.sop_class_uid)
            if new_series:
                self._refresh_modalities(connection, study_pk)
            append_entry(connection, change_entry(record, Action.CREATE))  # one commit: record and entry
        return True

    def _ensure_study(self, connection: sqlite3.Connection, study_uid: str, dataset: DicomJson) -> int:
        row = connection.execute("SELECT pk FROM study WHERE study_uid = ?", (study_uid,)).fetchone()
        if row:
            return row[0]
        pk = connection.execute(
            "INSERT INTO study (study_uid, attributes) VALUES (?, ?)",
            (study_uid, _dumps(level_json(self._table, Level.STUDY, dataset))),
        ).lastrowid
        assert pk is not None
        self._index_values(connection, Level.STUDY, pk, dataset)
        return pk

    def _ensure_series(
        self, connection: sqlite3.Connection, study_pk: int, series_uid: str, dataset: DicomJson
    ) -> tuple[int, bool]:
        row = connection.execute(
            "SELECT pk FROM series WHERE study_pk = ? AND series_uid = ?", (study_pk, series_uid)
        ).fetchone()
        if row:
            return row[0], False
        modality = series_modality(dataset)
        pk = connection.execute(
            "INSERT INTO series (study_pk, series_uid, modality, attributes) VALUES (?, ?, ?, ?)",
            (study_pk, series_uid, modality, _dumps(level_json(self._table, Level.SERIES, dataset))),
        ).lastrowid
        assert pk is not None
        self._index_values(connection, Level.SERIES, pk, dataset)
        return pk, True

    def _insert_instance(
        self,
        connection: sqlite3.Connection,
        study_pk: int,
        series_pk: int,
        record: InstanceRecord,
        dataset: DicomJson,
        frames: str | None = None,
    ) -> None:
        pk = connection.execute(
            "INSERT INTO instance (study_pk, series_pk, sop_uid, sop_class_uid, instance_key, instance_number,"
            " incarnation) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (study_pk, series_pk, record.sop_uid, record.sop_class_uid, record.instance_key, instance_number(dataset),
             record.incarnation),
        ).lastrowid
        assert pk is not None
        connection.execute(
            "INSERT INTO instance_json (pk, attributes, record) VALUES (?, ?, ?)",
            (pk, _dumps(level_json(self._table, Level.INSTANCE, dataset)), _dumps(vars(record))),
        )
        if frames is not None:
            connection.execute("INSERT OR REPLACE INTO instance_frames (pk, frames) VALUES (?, ?)", (pk, frames))
        self._index_values(connection, Level.INSTANCE, pk, dataset)

    def _index_values(self, connection: sqlite3.Connection, level: Level, pk: int, dataset: DicomJson) -> None:
        keys, words = match_keys(self._table, level, dataset)
        connection.executemany(
            f"INSERT OR IGNORE INTO {value_table(level)} (entity_pk, tag, value) VALUES (?, ?, ?)",
            [(pk, tag, key) for tag, found in keys.items() for key in found],
        )
        connection.executemany(
            f"INSERT OR IGNORE INTO {word_table(level)} (entity_pk, tag, word) VALUES (?, ?, ?)",
            [(pk, tag, word) for tag, found in words.items() for word in found],
        )

    def _add_sop_class(self, connection: sqlite3.Connection, study_pk: int, sop_class_uid: str) -> None:
        (current,) = connection.execute("SELECT sop_classes FROM study WHERE pk = ?", (study_pk,)).fetchone()
        classes = json.loads(current)
        if sop_class_uid in classes:
            return
        classes = with_sop_class(classes, sop_class_uid)
        self._set_computed(connection, study_pk, "sop_classes", SOP_CLASSES_IN_STUDY_TAG, classes)

    def _refresh_modalities(self, connection: sqlite3.Connection, study_pk: int) -> None:
        rows = connection.execute(
            "SELECT DISTINCT modality FROM series WHERE study_pk = ? AND modality IS NOT NULL ORDER BY modality",
            (study_pk,),
        )
        modalities = modalities_in_study(modality for (modality,) in rows)
        self._set_computed(connection, study_pk, "modalities", MODALITIES_IN_STUDY_TAG, modalities)

    def _refresh_sop_classes(self, connection: sqlite3.Connection, study_pk: int) -> None:
        rows = connection.execute(
            "SELECT DISTINCT sop_class_uid FROM instance WHERE study_pk = ? ORDER BY sop_class_uid",
            (study_pk,),
        )
        classes = recounted_sop_classes(sop_class for (sop_class,) in rows)
        self._set_computed(connection, study_pk, "sop_classes", SOP_CLASSES_IN_STUDY_TAG, classes)

    def _set_computed(
        self, connection: sqlite3.Connection, study_pk: int, column: str, tag: str, values: list[str]
    ) -> None:
        """Write a computed study attribute and, if it is searchable, its match rows."""
        connection.execute(f"UPDATE study SET {column} = ? WHERE pk = ?", (_dumps(values), study_pk))
        if not any(entry.matchable for entry in self._table.by_tag(tag)):
            return
        connection.execute("DELETE FROM study_value WHERE entity_pk = ? AND tag = ?", (study_pk, tag))
        connection.executemany(
            "INSERT OR IGNORE INTO study_value (entity_pk, tag, value) VALUES (?, ?, ?)",
            [(study_pk, tag, value) for value in values],
        )

    def _remove(
        self, connection: sqlite3.Connection, study_uid: str, series_uid: str | None, sop_uid: str | None,
        owner: str,
    ) -> list[InstanceRecord]:
        with write_transaction(connection):
            where, params = _instance_filter(study_uid, series_uid, sop_uid)
            columns = "i.pk, i.series_pk, i.study_pk, ij.record"
            rows = connection.execute(f"SELECT {columns} {_INSTANCE_FROM}{where}{_INSTANCE_ORDER}", params).fetchall()
            if not rows:
                return []
            _delete_entities(connection, Level.INSTANCE, [row[0] for row in rows])
            for series_pk, count in _count_by(row[1] for row in rows).items():
                _add_to_count(connection, "series", "instance_count", series_pk, -count)
            for study_pk, count in _count_by(row[2] for row in rows).items():
                _add_to_count(connection, "study", "instance_count", study_pk, -count)
            self._drop_empty(connection, {row[1] for row in rows}, {row[2] for row in rows})
            removed = [_record(row[3]) for row in rows]
            _bury(connection, removed, owner)
        return removed

    def _missing_entries(self, connection: sqlite3.Connection) -> list[tuple[Action, InstanceRecord]]:
        """Records without their create entry and tombstones without their delete entry (a
        database written before records and entries committed together)."""
        # The scan reads the small instance rows only (their incarnation column), not each
        # record's JSON; the records of what it finds are read after.
        pks = [pk for (pk,) in connection.execute(
            "SELECT i.pk FROM instance AS i WHERE NOT EXISTS (SELECT 1 FROM changefeed AS c"
            " WHERE c.instance_key = i.instance_key AND c.action = 'create' AND c.incarnation = i.incarnation)")]
        rows = (connection.execute("SELECT record FROM instance_json WHERE pk = ?", (pk,)).fetchone() for pk in pks)
        missing = [(Action.CREATE, _record(row[0])) for row in rows if row is not None]  # None: deleted meanwhile
        missing += [(Action.DELETE, _record(text)) for (text,) in connection.execute(
            "SELECT t.record FROM tombstone AS t WHERE NOT EXISTS (SELECT 1 FROM changefeed AS c"
            " WHERE c.instance_key = t.instance_key AND c.action = 'delete'"
            " AND c.incarnation = json_extract(t.record, '$.incarnation'))").fetchall()]
        return missing

    def _append_missing(self, connection: sqlite3.Connection, missing: list[tuple[Action, InstanceRecord]]) -> None:
        """Append the entries ``missing`` names that are still missing now, under the lock:
        between the scan and here, another process may have repaired them, or deleted the
        instance (its create entry must then not come after its delete entry)."""
        with write_transaction(connection):
            for action, record in missing:
                if _still_missing(connection, action, record):
                    append_entry(connection, change_entry(record, action))

    def _drop_empty(self, connection: sqlite3.Connection, series_pks: set[int], study_pks: set[int]) -> None:
        """Delete series and studies left without instances; fix the studies that remain."""
        marks = ", ".join("?" for _ in series_pks)
        empty = connection.execute(
            f"SELECT pk, study_pk FROM series WHERE pk IN ({marks}) AND instance_count <= 0", list(series_pks)
        ).fetchall()
        for study_pk, count in _count_by(study_pk for _, study_pk in empty).items():
            _add_to_count(connection, "study", "series_count", study_pk, -count)
        _delete_entities(connection, Level.SERIES, [pk for pk, _ in empty])
        for study_pk in study_pks:
            if _exists(connection, "SELECT 1 FROM study WHERE pk = ? AND instance_count <= 0", study_pk):
                _delete_entities(connection, Level.STUDY, [study_pk])
            else:
                self._refresh_modalities(connection, study_pk)
                self._refresh_sop_classes(connection, study_pk)

    # -- reads --------------------------------------------------------------------------

    def _list(
        self, connection: sqlite3.Connection, study_uid: str, series_uid: str | None, sop_uid: str | None,
        attributes: bool = True,
    ) -> list[InstanceRecord]:
        where, params = _instance_filter(study_uid, series_uid, sop_uid)
        # Without attributes, SQLite drops them (in C) before Python parses the rest.
        record = "ij.record" if attributes else "json_remove(ij.record, '$.attributes')"
        rows = connection.execute(f"SELECT {record} {_INSTANCE_FROM}{where}{_INSTANCE_ORDER}", params)
        return [_record(text) for (text,) in rows]

    def _headers(
        self, connection: sqlite3.Connection, study_uid: str, series_uid: str | None, sop_uid: str | None
    ) -> list[InstanceHeader]:
        # SQLite's JSON functions cut the header out of the stored record as text (in C):
        # 1,000 records are never parsed into Python objects.
        where, params = _instance_filter(study_uid, series_uid, sop_uid)
        rows = connection.execute(
            f"SELECT i.instance_key, json_extract(ij.record, '$.incarnation'), {_HEADER_SQL}"
            f" {_INSTANCE_FROM}{where}{_INSTANCE_ORDER}", params)
        return [InstanceHeader(key, incarnation, header) for key, incarnation, header in rows]

    def _headers_by_key(self, connection: sqlite3.Connection, instance_keys: list[str]) -> list[str | None]:
        found: dict[str, str] = {}
        for start in range(0, len(instance_keys), _KEYS_PER_QUERY):
            chunk = instance_keys[start:start + _KEYS_PER_QUERY]
            marks = ", ".join("?" for _ in chunk)
            found.update(connection.execute(
                f"SELECT i.instance_key, {_HEADER_SQL} FROM instance AS i JOIN instance_json AS ij ON ij.pk = i.pk"
                f" WHERE i.instance_key IN ({marks})", chunk).fetchall())
        return [found.get(key) for key in instance_keys]

    def _by_key(self, connection: sqlite3.Connection, instance_key: str) -> InstanceRecord | None:
        row = connection.execute(
            "SELECT ij.record FROM instance AS i JOIN instance_json AS ij ON ij.pk = i.pk WHERE i.instance_key = ?",
            (instance_key,),
        ).fetchone()
        return _record(row[0]) if row else None


def _checkpoint(connection: sqlite3.Connection) -> None:
    connection.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()


def _bury(connection: sqlite3.Connection, removed: list[InstanceRecord], owner: str) -> None:
    """In the removing transaction: each instance's delete entry and pending tombstone."""
    now = time.time()
    for record in removed:
        append_entry(connection, change_entry(record, Action.DELETE))
        connection.execute(
            "INSERT OR REPLACE INTO tombstone (instance_key, study_uid, series_uid, sop_uid, record, state, owner,"
            " claimed_at) VALUES (?, ?, ?, ?, ?, 'pending', ?, ?)",
            (record.instance_key, record.study_uid, record.series_uid, record.sop_uid, _dumps(vars(record)), owner,
             now))


def _counts(connection: sqlite3.Connection) -> StoreCounts:
    studies, series, instances = connection.execute(
        "SELECT (SELECT COUNT(*) FROM study), (SELECT COUNT(*) FROM series), (SELECT COUNT(*) FROM instance)"
    ).fetchone()
    return StoreCounts(studies=studies, series=series, instances=instances)


_LEVEL_JSON_TABLE = {Level.STUDY: "study", Level.SERIES: "series", Level.INSTANCE: "instance_json"}


def _add_to_level_json(
    connection: sqlite3.Connection, level: Level, pk: int, elements: DicomJson, filled: set[tuple[Level, int, str]]
) -> None:
    """Add a reindexed tag's elements to an entity's result JSON where it has none yet, so
    results carry the values of entities indexed before the tag was added, from the index
    (no header read per result; a study's or series' JSON holds its first instance's
    values, so an element already there is kept). ``filled`` remembers the elements a
    study or series has now, so its other instances in the page skip the update (half of
    the reindex's time otherwise)."""
    for tag, element in elements.items():
        if (level, pk, tag) in filled:
            continue
        if level is not Level.INSTANCE:
            filled.add((level, pk, tag))
        connection.execute(
            f"UPDATE {_LEVEL_JSON_TABLE[level]} SET attributes = json_set(attributes, ?, json(?))"
            " WHERE pk = ? AND json_type(attributes, ?) IS NULL",
            (f'$."{tag}"', _dumps(element), pk, f'$."{tag}"'))


def _exists(connection: sqlite3.Connection, sql: str, *params: Any) -> bool:
    return connection.execute(sql, params).fetchone() is not None


def _add_to_count(connection: sqlite3.Connection, table: str, column: str, pk: int, delta: int) -> None:
    if delta:
        connection.execute(f"UPDATE {table} SET {column} = {column} + ? WHERE pk = ?", (delta, pk))


def _instance_filter(study_uid: str, series_uid: str | None, sop_uid: str | None) -> tuple[str, list[str]]:
    # Only the given UIDs become conditions, so each lookup uses its unique index.
    conditions, params = ["s.study_uid = ?"], [study_uid]
    if series_uid is not None:
        conditions.append("se.series_uid = ?")
        params.append(series_uid)
    if sop_uid is not None:
        conditions.append("i.sop_uid = ?")
        params.append(sop_uid)
    return f" WHERE {' AND '.join(conditions)}", params


def _delete_entities(connection: sqlite3.Connection, level: Level, pks: list[int]) -> None:
    rows = [(pk,) for pk in pks]
    connection.executemany(f"DELETE FROM {value_table(level)} WHERE entity_pk = ?", rows)
    connection.executemany(f"DELETE FROM {word_table(level)} WHERE entity_pk = ?", rows)
    connection.executemany(f"DELETE FROM {level.value} WHERE pk = ?", rows)
    if level is Level.INSTANCE:
        connection.executemany("DELETE FROM instance_json WHERE pk = ?", rows)
        connection.executemany("DELETE FROM instance_frames WHERE pk = ?", rows)


def _count_by(keys: Any) -> dict[int, int]:
    counts: dict[int, int] = {}
    for key in keys:
        counts[key] = counts.get(key, 0) + 1
    return counts


def _still_missing(connection: sqlite3.Connection, action: Action, record: InstanceRecord) -> bool:
    """``record`` (an instance, or a tombstone for a delete) is there with its incarnation,
    and the feed has no ``action`` entry for that incarnation."""
    holder = (
        "SELECT 1 FROM instance AS i JOIN instance_json AS ij ON ij.pk = i.pk WHERE i.instance_key = ?"
        " AND json_extract(ij.record, '$.incarnation') = ?" if action is Action.CREATE else
        "SELECT 1 FROM tombstone AS t WHERE t.instance_key = ? AND json_extract(t.record, '$.incarnation') = ?")
    key = (record.instance_key, record.incarnation)
    if connection.execute(holder, key).fetchone() is None:
        return False
    return connection.execute(
        "SELECT 1 FROM changefeed WHERE instance_key = ? AND incarnation = ? AND action = ?",
        (*key, action.value)).fetchone() is None


def _record(text: str) -> InstanceRecord:
    return record_from_json(stored_json.load(text))


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)
