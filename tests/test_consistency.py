"""Files, index and change feed agree (issue 10), at the HTTP level on both backends.

- DELETE after STOW with blob-created events still queued: no event brings a deleted
  instance back (the ghosts of 44-155 in 2,000), also when the event parsed the file before
  the delete and indexes after it;
- a file removed behind the server's back: WADO answers 404 (never 200 and nothing) and the
  record is removed with a delete entry; metadata of such a ghost is 404, not 500;
- a full disk after the file is linked: 507 naming the cause, the file removed again, and
  the retry after space is freed stored (200).
"""

from __future__ import annotations

import errno
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from starlette.testclient import TestClient

from dicomcore import layout
from dicomweb.settings import Settings
from dicomweb.storage.port import BlobNotFoundError
from dicomweb.usecases.blob_created import Outcome
from tests.support.blob_drops import drop, event_grid_event
from tests.support.builders import make_dataset, multipart_body, to_bytes

pytestmark = pytest.mark.both_backends

OLD = datetime.now(UTC) - timedelta(minutes=5)
"""An event time past the settle wait: the handler acts at once."""


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """A short delete lease: a second DELETE waits out an abandoned claim for this long."""
    return settings.with_(delete_lease_seconds=0.5)


def _store(client: TestClient, *datasets: Any) -> None:
    body, content_type = multipart_body([to_bytes(ds) for ds in datasets])
    response = client.post("/v1/studies", content=body, headers={"Content-Type": content_type})
    assert response.status_code == 200, response.text


def _key(ds: Any) -> str:
    return layout.instance_key(ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID)


def _feed(client: TestClient) -> list[dict[str, Any]]:
    response = client.get("/v1/changefeed", params={"offset": 0, "limit": 1000, "includeMetadata": "false"})
    assert response.status_code == 200
    return response.json()


def _exists(client: TestClient, name: str) -> bool:
    services = client.app.state.services  # type: ignore[attr-defined]
    try:
        client.portal.call(services.blobs.size, name)  # type: ignore[union-attr]
        return True
    except BlobNotFoundError:
        return False


def _deliver(client: TestClient, settings: Settings, name: str) -> Outcome:
    handler = client.app.state.services.blob_created  # type: ignore[attr-defined]
    event = event_grid_event(settings, name, 1, event_time=OLD)
    outcome: Outcome = client.portal.call(handler.handle_event, event)  # type: ignore[union-attr]
    return outcome


def test_queued_blob_events_after_delete_bring_nothing_back(client: TestClient, settings: Settings) -> None:
    study = make_dataset()
    datasets = [make_dataset(study=study.StudyInstanceUID, series=study.SeriesInstanceUID, instance_number=n)
                for n in range(1, 9)]
    _store(client, *datasets)
    assert client.delete(f"/v1/studies/{study.StudyInstanceUID}").status_code == 204
    for ds in datasets:  # the STOW's events, delivered late (and twice: delivery is at least once)
        for _ in range(2):
            assert _deliver(client, settings, layout.file_name(_key(ds))) in (Outcome.GONE, Outcome.DELETED)
    assert client.get("/v1/instances", params={"StudyInstanceUID": study.StudyInstanceUID}).json() == []
    assert not any(_exists(client, layout.file_name(_key(ds))) for ds in datasets)
    actions = [entry["action"] for entry in _feed(client)]
    assert actions.count("create") == len(datasets) and actions.count("delete") == len(datasets)
    _store(client, datasets[0])  # a re-sent instance after a completed delete is stored fresh
    assert client.get(f"/v1/studies/{study.StudyInstanceUID}/metadata").status_code == 200


def test_event_for_a_file_of_a_deleted_instance_does_not_index_it(client: TestClient, settings: Settings) -> None:
    ds = make_dataset()
    _store(client, ds)
    services = client.app.state.services  # type: ignore[attr-defined]
    # A delete whose record and tombstone are committed, its file not yet removed.
    client.portal.call(services.index.remove_instances, ds.StudyInstanceUID)  # type: ignore[union-attr]
    assert _deliver(client, settings, layout.file_name(_key(ds))) is Outcome.DELETED
    assert client.get(f"/v1/studies/{ds.StudyInstanceUID}/metadata").status_code == 404
    assert client.delete(f"/v1/studies/{ds.StudyInstanceUID}").status_code == 204  # finishes that delete
    assert not _exists(client, layout.file_name(_key(ds)))


def test_repair_racing_a_delete_is_refused(client: TestClient, settings: Settings) -> None:
    ds = make_dataset()
    _store(client, ds)
    services = client.app.state.services  # type: ignore[attr-defined]
    key = _key(ds)
    original = services.sidecars.parse_stored

    async def parse_then_delete(parsed_key: str) -> Any:
        parsed = await original(parsed_key)
        # The DELETE commits (record out, tombstone in) after the event parsed the file.
        await services.index.remove_instances(ds.StudyInstanceUID)
        return parsed

    services.sidecars.parse_stored = parse_then_delete
    try:
        indexed = client.portal.call(services.store.repair, key)  # type: ignore[union-attr]
    finally:
        services.sidecars.parse_stored = original
    assert indexed is False
    assert client.portal.call(services.index.get_instance_by_key, key) is None  # type: ignore[union-attr]
    assert client.get("/v1/instances", params={"StudyInstanceUID": ds.StudyInstanceUID}).json() == []


def test_vanished_file_is_404_and_its_record_is_removed(client: TestClient) -> None:
    ds = make_dataset(patient_id="GHOST-1")
    kept = make_dataset(study=ds.StudyInstanceUID, series=ds.SeriesInstanceUID, patient_id="GHOST-1",
                        instance_number=2)
    _store(client, ds, kept)
    services = client.app.state.services  # type: ignore[attr-defined]
    for name in (layout.file_name(_key(ds)), layout.metadata_name(_key(ds)), layout.frames_name(_key(ds))):
        client.portal.call(services.blobs.delete, name)  # type: ignore[union-attr]
    url = f"/v1/studies/{ds.StudyInstanceUID}/series/{ds.SeriesInstanceUID}/instances/{ds.SOPInstanceUID}"
    response = client.get(url, headers={"Accept": "application/dicom"})
    assert response.status_code == 404
    assert "gone" in response.json()["message"]
    assert client.get(url + "/metadata").status_code == 404
    found = client.get("/v1/instances", params={"PatientID": "GHOST-1"}).json()
    assert [item["00080018"]["Value"][0] for item in found] == [kept.SOPInstanceUID]
    deletes = [entry for entry in _feed(client) if entry["action"] == "delete"]
    assert [entry["sopInstanceUid"] for entry in deletes] == [ds.SOPInstanceUID]
    study = client.get(f"/v1/studies/{ds.StudyInstanceUID}", headers={"Accept": "multipart/related; "
                                                                       "type=\"application/dicom\""})
    assert study.status_code == 200  # the study still answers, with what is left


def test_metadata_and_frames_of_a_ghost_are_404(client: TestClient) -> None:
    ds = make_dataset()
    _store(client, ds)
    services = client.app.state.services  # type: ignore[attr-defined]
    for name in (layout.metadata_name(_key(ds)), layout.frames_name(_key(ds)), layout.file_name(_key(ds))):
        client.portal.call(services.blobs.delete, name)  # type: ignore[union-attr]
    url = f"/v1/studies/{ds.StudyInstanceUID}/series/{ds.SeriesInstanceUID}/instances/{ds.SOPInstanceUID}"
    assert client.get(url + "/frames/1", headers={"Accept": "application/octet-stream"}).status_code == 404
    assert client.get(f"/v1/studies/{ds.StudyInstanceUID}/metadata").status_code == 404
    assert client.get(f"/v1/studies/{ds.StudyInstanceUID}/metadata").status_code == 404


def test_full_disk_after_the_link_is_507_and_the_retry_is_stored(
        client: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    ds = make_dataset()
    services = client.app.state.services  # type: ignore[attr-defined]

    async def full(*args: Any, **kwargs: Any) -> bool:
        raise OSError(errno.ENOSPC, "No space left on device")

    def full_now(*args: Any, **kwargs: Any) -> bool:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(services.index, "add_instance", full)
    if hasattr(services.index, "add_instance_blocking"):  # SQLite: STOW's one-trip path
        monkeypatch.setattr(services.index, "add_instance_blocking", full_now)
    body, content_type = multipart_body([to_bytes(ds)])
    response = client.post("/v1/studies", content=body, headers={"Content-Type": content_type})
    assert response.status_code == 507
    (failed,) = response.json()["00081198"]["Value"]
    assert failed["00081197"]["Value"] == [272]
    assert "insufficient storage" in failed["00000902"]["Value"][0]
    assert not _exists(client, layout.file_name(_key(ds)))  # never "failed" with the file kept
    monkeypatch.undo()
    response = client.post("/v1/studies", content=body, headers={"Content-Type": content_type})
    assert response.status_code == 200, response.text
    assert _feed(client)[-1]["action"] == "create"


def test_full_disk_while_spooling_is_507(client: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    from dicomweb.http import multipart

    async def full(*args: Any) -> int:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(multipart, "_write", full)
    services = client.app.state.services  # type: ignore[attr-defined]
    monkeypatch.setattr(services, "settings", services.settings.with_(stow_memory_part_bytes=0))  # spool every part
    body, content_type = multipart_body([to_bytes(make_dataset())])
    response = client.post("/v1/studies", content=body, headers={"Content-Type": content_type})
    assert response.status_code == 507
    assert "insufficient storage" in response.json()["message"]


def test_full_disk_while_writing_a_part_held_in_memory_is_507(client: TestClient, settings: Settings,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """A part received in memory is first written when it is stored (docs/stow-receive.md):
    a full disk there fails that instance with 272 "insufficient storage" (507 when nothing
    was stored), and nothing is left behind."""
    import builtins

    from dicomweb.storage import new_files

    def full(*args: Any) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    real_open = builtins.open

    def open_full(file: Any, mode: str = "r", *args: Any, **kwargs: Any) -> Any:
        if mode == "xb":  # the staged copy the async path (Azure) places
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_open(file, mode, *args, **kwargs)

    monkeypatch.setattr(new_files, "write_all", full)
    monkeypatch.setattr(builtins, "open", open_full)
    ds = make_dataset()
    body, content_type = multipart_body([to_bytes(ds)])
    response = client.post("/v1/studies", content=body, headers={"Content-Type": content_type})
    assert response.status_code == 507, response.text
    (failed,) = response.json()["00081198"]["Value"]
    assert failed["00081197"]["Value"] == [272]
    assert "insufficient storage" in str(failed)
    assert not _exists(client, layout.file_name(_key(ds)))


def test_resend_after_a_crash_between_link_and_index_is_stored(client: TestClient, settings: Settings) -> None:
    same, other = make_dataset(), make_dataset()
    drop(settings, layout.file_name(_key(same)), to_bytes(same))  # linked, never indexed
    _store(client, same)  # these very bytes are stored now: 200, not 409
    assert client.get(f"/v1/studies/{same.StudyInstanceUID}/metadata").status_code == 200
    changed = make_dataset(study=other.StudyInstanceUID, series=other.SeriesInstanceUID, sop=other.SOPInstanceUID,
                           patient_id="OTHER")
    drop(settings, layout.file_name(_key(other)), to_bytes(other))
    body, content_type = multipart_body([to_bytes(changed)])
    response = client.post("/v1/studies", content=body, headers={"Content-Type": content_type})
    assert response.status_code == 409  # another copy of these UIDs is stored (and indexed now)
    assert client.get(f"/v1/studies/{other.StudyInstanceUID}/metadata").status_code == 200
