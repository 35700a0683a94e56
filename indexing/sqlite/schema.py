"""The SQLite index schema and how connections to it are opened.

Tables (the change feed's ``changefeed`` table, :data:`FEED_SCHEMA`, shares the file, so a
record and its feed entry commit in one transaction):

``study`` / ``series`` / ``instance``
    One row per entity, keyed by UID under its parent, with an integer ``pk`` that also
    gives the stable result order. Studies and series hold the DICOM JSON of their
    level's returnable attributes (taken from the first instance indexed) and the
    computed attributes (counts, Modalities in Study, SOP Classes in Study).
``instance_json`` (pk, attributes, record)
    An instance's returnable attributes and its full :class:`~indexing.port.InstanceRecord`,
    apart from ``instance`` so that its rows stay small: paging with a large offset
    steps over instance rows, and a header can be tens of kilobytes.
``{level}_value`` (entity_pk, tag, value)
    One row per matchable attribute value, normalized by :mod:`indexing.values`; the
    primary key (tag, value, entity_pk) serves every single, list, range and prefix
    match. Which tags get rows is decided by :mod:`indexing.attributes`, so adding a
    searchable attribute needs no schema change.
``{level}_word`` (entity_pk, tag, word)
    One row per person-name component, for fuzzy matching by prefix.
``instance_frames`` (pk, frames)
    An instance's frame index (JSON text), inserted in the transaction that inserts its
    record: the embedded store keeps it here rather than in a file beside the instance.
    Instances indexed before this table existed have none (their sidecar file has it):
    :data:`FRAME_INDEX_SCHEMA`, created by :func:`create_schema` in existing databases too.
``tombstone`` (instance_key, UIDs, record, state, owner, claimed_at)
    A deleted instance: ``pending`` from the moment its record is removed until its files
    are gone, then ``done``. The blob-created handler and repair never index a
    tombstoned instance; a fresh STOW of it removes the tombstone.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from indexing.attributes import Level

BUSY_TIMEOUT_MS = 30_000
"""How long a writer waits for another process's transaction before failing."""

WAL_SIZE_LIMIT_BYTES = 64 << 20
"""What the WAL file is truncated to when a checkpoint empties it."""

_ENTITY_TABLES = """
CREATE TABLE IF NOT EXISTS study (
    pk INTEGER PRIMARY KEY,
    study_uid TEXT NOT NULL UNIQUE,
    attributes TEXT NOT NULL,
    series_count INTEGER NOT NULL DEFAULT 0,
    instance_count INTEGER NOT NULL DEFAULT 0,
    modalities TEXT NOT NULL DEFAULT '[]',
    sop_classes TEXT NOT NULL DEFAULT '[]'
);
CREATE TABLE IF NOT EXISTS series (
    pk INTEGER PRIMARY KEY,
    study_pk INTEGER NOT NULL,
    series_uid TEXT NOT NULL,
    modality TEXT,
    attributes TEXT NOT NULL,
    instance_count INTEGER NOT NULL DEFAULT 0,
    UNIQUE (study_pk, series_uid)
);
CREATE INDEX IF NOT EXISTS series_by_uid ON series (series_uid);
CREATE TABLE IF NOT EXISTS instance (
    pk INTEGER PRIMARY KEY,
    study_pk INTEGER NOT NULL,
    series_pk INTEGER NOT NULL,
    sop_uid TEXT NOT NULL,
    sop_class_uid TEXT NOT NULL,
    instance_key TEXT NOT NULL UNIQUE,
    instance_number INTEGER,
    UNIQUE (series_pk, sop_uid)
);
CREATE TABLE IF NOT EXISTS instance_json (
    pk INTEGER PRIMARY KEY,
    attributes TEXT NOT NULL,
    record TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS instance_by_study ON instance (study_pk);
CREATE INDEX IF NOT EXISTS instance_by_uid ON instance (sop_uid);
CREATE TABLE IF NOT EXISTS tombstone (
    instance_key TEXT PRIMARY KEY,
    study_uid TEXT NOT NULL,
    series_uid TEXT NOT NULL,
    sop_uid TEXT NOT NULL,
    record TEXT NOT NULL,
    state TEXT NOT NULL,
    owner TEXT NOT NULL,
    claimed_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS tombstone_by_state ON tombstone (state, study_uid);
"""

FEED_SCHEMA = """
CREATE TABLE IF NOT EXISTS changefeed (
    sequence INTEGER PRIMARY KEY AUTOINCREMENT,
    entry_id TEXT NOT NULL UNIQUE,
    timestamp TEXT NOT NULL,
    action TEXT NOT NULL,
    state TEXT NOT NULL,
    study_uid TEXT NOT NULL,
    series_uid TEXT NOT NULL,
    sop_uid TEXT NOT NULL,
    sop_class_uid TEXT NOT NULL,
    instance_key TEXT NOT NULL,
    incarnation TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS changefeed_by_time ON changefeed (timestamp, sequence);
CREATE INDEX IF NOT EXISTS changefeed_by_instance ON changefeed (instance_key, state);
"""

EXTENDED_TAG_SCHEMA = """
CREATE TABLE IF NOT EXISTS extended_tag (path TEXT PRIMARY KEY, body TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS extended_tag_error (
    path TEXT NOT NULL, sop_uid TEXT NOT NULL, body TEXT NOT NULL, seq INTEGER PRIMARY KEY AUTOINCREMENT,
    UNIQUE (path, sop_uid) ON CONFLICT REPLACE
);
"""
"""Extended query tag definitions (indexing/sqlite/extended_tag_store.py) and their reindex
errors; the index store reads the definitions in each add's write transaction."""

_MATCH_TABLES = """
CREATE TABLE IF NOT EXISTS {level}_value (
    entity_pk INTEGER NOT NULL,
    tag TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (tag, value, entity_pk)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS {level}_value_owner ON {level}_value (entity_pk);
CREATE TABLE IF NOT EXISTS {level}_word (
    entity_pk INTEGER NOT NULL,
    tag TEXT NOT NULL,
    word TEXT NOT NULL,
    PRIMARY KEY (tag, word, entity_pk)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS {level}_word_owner ON {level}_word (entity_pk);
"""


FRAME_INDEX_SCHEMA = """
CREATE TABLE IF NOT EXISTS instance_frames (
    pk INTEGER PRIMARY KEY,
    frames TEXT NOT NULL
);
"""
"""Frame indexes held with their records (docs/architecture.md, "Derived data: where it
lives"). A table of its own, not a column, so databases made before it gain it with
``CREATE TABLE IF NOT EXISTS`` (no table rewrite), and a whole-slide level's index of
100,000 frames never lengthens the ``instance_json`` rows searches read."""


def value_table(level: Level) -> str:
    return f"{level.value}_value"


def word_table(level: Level) -> str:
    return f"{level.value}_word"


def _statements() -> list[str]:
    matches = "".join(_MATCH_TABLES.format(level=level.value) for level in Level)
    script = _ENTITY_TABLES + FEED_SCHEMA + EXTENDED_TAG_SCHEMA + matches + FRAME_INDEX_SCHEMA
    return [statement.strip() for statement in script.split(";") if statement.strip()]


def connect(database: Path) -> sqlite3.Connection:
    """A connection in autocommit mode; transactions are opened explicitly."""
    database.parent.mkdir(parents=True, exist_ok=True)
    # check_same_thread=False: connections are pooled and handed from one worker thread
    # to the next, never used by two threads at once.
    connection = sqlite3.connect(database, isolation_level=None, check_same_thread=False)
    # Patient data: owner only. SQLite gives its -wal and -shm files the database's mode.
    if database.exists():
        os.chmod(database, 0o600)
    connection.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    # WAL lets readers run while one writer commits; NORMAL sync is durable across
    # process crashes, which is what the server needs (the blob store is the truth).
    connection.execute("PRAGMA journal_mode = WAL")
    connection.execute("PRAGMA synchronous = NORMAL")
    # The WAL file keeps its largest size unless told (a bulk import beside a server left
    # 134 MB-several GB); after a crash, opening the store reads the whole WAL.
    connection.execute(f"PRAGMA journal_size_limit = {WAL_SIZE_LIMIT_BYTES}")
    return connection


@contextmanager
def write_transaction(connection: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """``BEGIN IMMEDIATE`` takes the write lock up front, so two processes updating the
    same study's counters serialize instead of failing on lock upgrade. Inside an open
    transaction it joins it (the outer one commits or rolls back the whole)."""
    if connection.in_transaction:
        yield connection
        return
    connection.execute("BEGIN IMMEDIATE")
    try:
        yield connection
    except BaseException:
        if connection.in_transaction:  # SQLite rolls back by itself on some errors (SQLITE_FULL)
            connection.execute("ROLLBACK")
        raise
    connection.execute("COMMIT")


def create_schema(connection: sqlite3.Connection) -> None:
    with write_transaction(connection):
        for statement in _statements():
            connection.execute(statement)
        for migrate in MIGRATIONS:
            migrate(connection)


def _columns(connection: sqlite3.Connection, table: str) -> set[str]:
    return {row[1] for row in connection.execute(f"PRAGMA table_info({table})")}


def add_instance_incarnation(connection: sqlite3.Connection) -> None:
    """``instance.incarnation``: the record's incarnation (also in ``instance_json.record``)
    beside the instance's key, so the start-up feed check (``reconcile_entries``) compares
    it with the feed's without reading every record's JSON (380 s at 310,000 instances;
    docs/performance.md, "Import speed (session 3)"). A database made before is filled in
    once, here (one pass over the records)."""
    if "incarnation" in _columns(connection, "instance"):
        return
    connection.execute("ALTER TABLE instance ADD COLUMN incarnation TEXT")
    connection.execute("UPDATE instance SET incarnation = (SELECT json_extract(ij.record, '$.incarnation')"
                       " FROM instance_json AS ij WHERE ij.pk = instance.pk)")


MIGRATIONS: list[Callable[[sqlite3.Connection], None]] = [add_instance_incarnation]
"""Changes to a database made by an earlier version, in order; each checks whether it is
needed, and all run in the schema's write transaction at every open."""
