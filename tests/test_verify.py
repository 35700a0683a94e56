"""Reconciliation (``dicomweb verify [--repair]``) on a store damaged in each way it can be,
on both backends: each kind is reported, repaired where it can be, and a second run finds
only what cannot be repaired (a file whose bytes changed)."""

from __future__ import annotations

import os
import sqlite3
import time
from typing import Any

import pytest
from azure.cosmos import CosmosClient
from starlette.testclient import TestClient

from changefeed.port import Action, ChangeEntry
from dicomcore import layout
from dicomweb.cli import main
from dicomweb.settings import Settings
from dicomweb.usecases.reconcile import Report
from indexing.records import entry_id
from tests.support.blob_drops import drop, stored_names
from tests.support.builders import make_dataset, multipart_body, to_bytes

pytestmark = pytest.mark.both_backends


@pytest.fixture
def settings(settings: Settings) -> Settings:
    # No start-up reconciliation: the test damages the store and runs it by hand.
    return settings.with_(delete_lease_seconds=0.2, verify_at_startup=False, staging_grace_seconds=60)


def _store(client: TestClient, ds: Any) -> None:
    body, content_type = multipart_body([to_bytes(ds)])
    assert client.post("/v1/studies", content=body, headers={"Content-Type": content_type}).status_code == 200


def _key(ds: Any) -> str:
    return layout.instance_key(ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID)


def _call(client: TestClient, function: Any, *args: Any, **kwargs: Any) -> Any:
    return client.portal.call(lambda: function(*args, **kwargs))  # type: ignore[union-attr]


def _remove_create_entry(settings: Settings, ds: Any, incarnation: str) -> None:
    """The feed loses an instance's create entry (what a crash between the two writes left)."""
    wanted = entry_id(_key(ds), incarnation, Action.CREATE)
    if settings.index_store == "sqlite":
        with sqlite3.connect(settings.data_dir / "index.sqlite") as connection:
            assert connection.execute("DELETE FROM changefeed WHERE entry_id = ?", (wanted,)).rowcount == 1
        return
    client = CosmosClient(settings.cosmos_endpoint, settings.cosmos_key, connection_verify=False)
    feed = client.get_database_client(settings.cosmos_database).get_container_client("changefeed")
    (item,) = feed.query_items("SELECT * FROM c WHERE c.entry_id = @id", parameters=[{"name": "@id", "value": wanted}],
                               enable_cross_partition_query=True)
    feed.delete_item(item, partition_key=item["feed"])
    # ... and the instance document carries it as the older protocol's ``pending`` (documents
    # written since issue 17 keep their ``entry``, checked against the feed: both are repaired).
    index = client.get_database_client(settings.cosmos_database).get_container_client("index")
    document = index.read_item(f"instance:{ds.SeriesInstanceUID}:{ds.SOPInstanceUID}",
                               partition_key=ds.StudyInstanceUID)
    pending = {name: item[name] for name in ChangeEntry.__dataclass_fields__} | {"sequence": 0, "timestamp": ""}
    index.upsert_item({**document, "pending": pending})


def test_verify_reports_and_repairs_each_kind_of_damage(client: TestClient, settings: Settings) -> None:
    services = client.app.state.services  # type: ignore[attr-defined]
    unindexed, deleted, unfinished, vanished, corrupt, unannounced = (make_dataset() for _ in range(6))
    for ds in (deleted, unfinished, vanished, corrupt, unannounced):
        _store(client, ds)
    # A file linked but never indexed (a crash between the two).
    drop(settings, layout.file_name(_key(unindexed)), to_bytes(unindexed))
    # A delete that removed the record and finished, but whose file is still there.
    [removed] = _call(client, services.index.remove_instances, deleted.StudyInstanceUID)
    _call(client, services.index.finish_delete, removed)
    # A delete that crashed after its commit.
    _call(client, services.index.remove_instances, unfinished.StudyInstanceUID, owner="a dead process")
    # A file removed behind the server's back; another whose bytes changed (same size).
    _call(client, services.blobs.delete, layout.file_name(_key(vanished)))
    stored = bytearray(to_bytes(corrupt))
    stored[-1] ^= 0xFF
    drop(settings, layout.file_name(_key(corrupt)), bytes(stored))
    # A record whose create entry never reached the feed.
    record = _call(client, services.index.get_instance_by_key, _key(unannounced))
    _remove_create_entry(settings, unannounced, record.incarnation)
    # An upload a crash left in the staging folder two minutes ago: past this test's grace
    # (60 s), within the default's (1 h), so that other servers sharing the machine's
    # temporary staging folder (the Azure store's) leave it to this test.
    leftover = services.blobs.new_staging_path()
    leftover.write_bytes(b"partial upload")
    os.utime(leftover, (time.time() - 120, time.time() - 120))
    time.sleep(0.3)  # the dead deleter's claim expires

    found: Report = _call(client, services.reconcile.run, repair=False, digests=True)
    assert (found.unindexed_files, found.deleted_files, found.unfinished_deletes, found.missing_files,
            found.corrupt_files, found.missing_entries) == (1, 1, 1, 1, 1, 1)
    assert found.staging_leftovers >= 1 and leftover.exists()  # a check changes nothing

    repaired: Report = _call(client, services.reconcile.run, repair=True, digests=True)
    kinds = ("unindexed_files", "deleted_files", "unfinished_deletes", "missing_files", "corrupt_files",
             "missing_entries")
    assert [getattr(repaired, kind) for kind in kinds] == [getattr(found, kind) for kind in kinds]
    assert repaired.digests_filled == 1  # the unindexed file's, taken by this run
    assert not leftover.exists()
    again: Report = _call(client, services.reconcile.run, repair=False, digests=True)
    assert again.damage == again.corrupt_files == 1  # bytes cannot be repaired, only reported

    def indexed(ds: Any) -> bool:
        return _call(client, services.index.get_instance_by_key, _key(ds)) is not None

    assert [indexed(ds) for ds in (unindexed, deleted, unfinished, vanished, unannounced)] == [
        True, False, False, False, True]
    names = stored_names(settings, "instances/")
    assert layout.file_name(_key(deleted)) not in names and layout.file_name(_key(unfinished)) not in names
    feed = client.get("/v1/changefeed", params={"limit": 100, "includeMetadata": "false"}).json()
    assert [e["sopInstanceUid"] for e in feed if e["action"] == "delete"] == [
        deleted.SOPInstanceUID, unfinished.SOPInstanceUID, vanished.SOPInstanceUID]
    creates = [e["sopInstanceUid"] for e in feed if e["action"] == "create"]
    assert sorted(creates) == sorted(ds.SOPInstanceUID for ds in (deleted, unfinished, vanished, corrupt,
                                                                   unannounced, unindexed))


def test_verify_command_exits_1_on_damage_and_0_once_repaired(tmp_path: Any) -> None:
    # Embedded only: the command runs the same use case over the Azure settings as the test above.
    data = tmp_path / "cli-data"
    ds = make_dataset()
    drop(Settings(data_dir=data), layout.file_name(_key(ds)), to_bytes(ds))
    assert main(["verify", "--data", str(data)]) == 1
    assert main(["verify", "--repair", "--data", str(data)]) == 0
    assert main(["verify", "--data", str(data)]) == 0
