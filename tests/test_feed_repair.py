"""The SQLite store's feed check scans without the write lock (minutes on a big store), then
repairs under it only what is still missing (embedded store: Cosmos has no write lock)."""

from __future__ import annotations

import sqlite3
from typing import Any

import pytest
from starlette.testclient import TestClient

from changefeed.port import Action
from dicomcore import layout
from dicomweb.settings import Settings
from indexing.records import entry_id
from indexing.sqlite import schema
from tests.support.builders import make_dataset, multipart_body, to_bytes


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.with_(verify_at_startup=False)


def _store(client: TestClient, ds: Any) -> None:
    body, content_type = multipart_body([to_bytes(ds)])
    assert client.post("/v1/studies", content=body, headers={"Content-Type": content_type}).status_code == 200


def _key(ds: Any) -> str:
    return layout.instance_key(ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID)


def test_a_repair_skips_entries_settled_since_its_scan(client: TestClient, settings: Settings) -> None:
    """An instance deleted, or an entry appended by another process, between the scan and
    the repair gets no (second) create entry."""
    store = client.app.state.services.index  # type: ignore[attr-defined]
    database = settings.data_dir / "index.sqlite"
    deleted, repaired_elsewhere, still_missing = make_dataset(), make_dataset(), make_dataset()
    for ds in (deleted, repaired_elsewhere, still_missing):
        _store(client, ds)
        record = client.portal.call(store.get_instance_by_key, _key(ds))  # type: ignore[union-attr]
        with sqlite3.connect(database) as connection:
            wanted = entry_id(_key(ds), record.incarnation, Action.CREATE)
            assert connection.execute("DELETE FROM changefeed WHERE entry_id = ?", (wanted,)).rowcount == 1
    with sqlite3.connect(database) as connection:
        missing = store._missing_entries(connection)
    assert sorted(record.sop_uid for _, record in missing) == sorted(
        ds.SOPInstanceUID for ds in (deleted, repaired_elsewhere, still_missing))

    # Between the scan and the repair: one instance is deleted, another one's entry appended.
    assert client.delete(f"/v1/studies/{deleted.StudyInstanceUID}").status_code == 204
    with sqlite3.connect(database) as connection:
        store._append_missing(connection, [m for m in missing if m[1].sop_uid == repaired_elsewhere.SOPInstanceUID])
        store._append_missing(connection, missing)

    feed = client.get("/v1/changefeed", params={"limit": 100, "includeMetadata": "false"}).json()
    creates = [entry["sopInstanceUid"] for entry in feed if entry["action"] == "create"]
    assert deleted.SOPInstanceUID not in creates
    assert creates.count(repaired_elsewhere.SOPInstanceUID) == 1
    assert creates.count(still_missing.SOPInstanceUID) == 1
    assert client.portal.call(lambda: store.reconcile_entries(repair=False)) == 0  # type: ignore[union-attr]


def test_a_database_made_before_the_incarnation_column_gets_it_filled(client: TestClient, settings: Settings) -> None:
    """The feed check compares ``instance.incarnation`` with the feed's (no JSON read per
    record); a database made without that column gets it at the next open, filled in."""
    store = client.app.state.services.index  # type: ignore[attr-defined]
    database = settings.data_dir / "index.sqlite"
    kept, unfed = make_dataset(), make_dataset()
    for ds in (kept, unfed):
        _store(client, ds)
    unfed_record = client.portal.call(store.get_instance_by_key, _key(unfed))  # type: ignore[union-attr]
    with sqlite3.connect(database) as connection:
        connection.execute("ALTER TABLE instance DROP COLUMN incarnation")  # as an earlier version made it
        connection.execute("DELETE FROM changefeed WHERE entry_id = ?",
                           (entry_id(_key(unfed), unfed_record.incarnation, Action.CREATE),))
    with sqlite3.connect(database, isolation_level=None) as connection:
        schema.create_schema(connection)
        filled = dict(connection.execute("SELECT instance_key, incarnation FROM instance").fetchall())
        missing = store._missing_entries(connection)
    kept_record = client.portal.call(store.get_instance_by_key, _key(kept))  # type: ignore[union-attr]
    assert filled == {_key(kept): kept_record.incarnation, _key(unfed): unfed_record.incarnation}
    assert [(action, record.sop_uid) for action, record in missing] == [(Action.CREATE, unfed.SOPInstanceUID)]
    assert client.portal.call(lambda: store.reconcile_entries(repair=True)) == 1  # type: ignore[union-attr]
    feed = client.get("/v1/changefeed", params={"limit": 100, "includeMetadata": "false"}).json()
    assert sorted(entry["sopInstanceUid"] for entry in feed) == sorted([kept.SOPInstanceUID, unfed.SOPInstanceUID])
