"""Rewriting number match keys of databases written before keys were ordered numerically.

Up to schema version 1, a number's key was its canonical text (``1``, ``1.5``), which
matched equal numbers but could not serve ranges. :func:`~indexing.values.number_key` now
gives keys whose text order is the numbers' order; this rewrites the old keys once, in
the transaction that creates the schema (``PRAGMA user_version`` records that it ran).
"""

from __future__ import annotations

import json
import sqlite3

from indexing.attributes import Level, standard_table
from indexing.sqlite.schema import value_table
from indexing.values import DECIMAL_VRS, INTEGER_VRS, number_key

NUMBER_KEYS_VERSION = 1


def migrate_number_keys(connection: sqlite3.Connection) -> None:
    """Rewrite old number keys (inside the caller's write transaction); a no-op once done."""
    (version,) = connection.execute("PRAGMA user_version").fetchone()
    if version >= NUMBER_KEYS_VERSION:
        return
    for tag, vr in _number_tags(connection).items():
        for level in Level:
            _rewrite(connection, value_table(level), tag, vr)
    connection.execute(f"PRAGMA user_version = {NUMBER_KEYS_VERSION}")


def _number_tags(connection: sqlite3.Connection) -> dict[str, str]:
    tags = {entry.tag: entry.vr for entry in standard_table().entries if entry.matchable}
    for (body,) in connection.execute("SELECT body FROM extended_tag"):
        definition = json.loads(body)
        tags[definition["path"]] = definition["vr"]
    return {tag: vr for tag, vr in tags.items() if vr in INTEGER_VRS or vr in DECIMAL_VRS}


def _rewrite(connection: sqlite3.Connection, table: str, tag: str, vr: str) -> None:
    rows = connection.execute(f"SELECT entity_pk, value FROM {table} WHERE tag = ?", (tag,)).fetchall()
    for pk, old in rows:
        try:
            new = number_key(vr, old)
        except ValueError:
            continue  # stored as written (it did not parse): still matches exactly
        if new != old:
            connection.execute(f"DELETE FROM {table} WHERE tag = ? AND value = ? AND entity_pk = ?", (tag, old, pk))
            connection.execute(f"INSERT OR IGNORE INTO {table} (entity_pk, tag, value) VALUES (?, ?, ?)",
                               (pk, tag, new))
