"""The blob-created handler on both backends, fed the payloads Event Grid delivers.

Files are put straight into storage (no STOW), as a bulk copy or a large upload would, and
the events are delivered the way Event Grid may: each several times, shuffled, some before
the blob exists, some concurrently, some long after. Whatever the order, each instance is
indexed and entered in the change feed exactly once, and a file that cannot be imported
ends in failed/ with its reason.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from starlette.testclient import TestClient

from dicomcore import layout
from dicomweb.api.context import Services
from dicomweb.settings import Settings
from dicomweb.usecases import blob_created
from dicomweb.usecases.blob_created import Outcome
from tests.support.blob_drops import cloud_event, drop, event_grid_event, stored_names
from tests.support.builders import DICOM, make_dataset, to_bytes

pytestmark = pytest.mark.both_backends


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """No periodic drop-zone scan: these tests deliver every event themselves."""
    return settings.with_(ingest_scan_seconds=0)


@pytest.fixture(autouse=True)
def short_settle(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(blob_created, "SETTLE_SECONDS", 0.3)


@pytest.fixture
def services(client: TestClient) -> Iterator[Services]:
    yield client.app.state.services  # type: ignore[attr-defined]


def deliver(
    client: TestClient, services: Services, *events: dict[str, Any], concurrently: bool = False
) -> list[Outcome]:
    """Hand the events to the handler on the app's event loop, as the trigger would."""

    async def run() -> list[Outcome]:
        if concurrently:
            return list(await asyncio.gather(*(services.blob_created.handle_event(event) for event in events)))
        return [await services.blob_created.handle_event(event) for event in events]

    return client.portal.call(run)  # type: ignore[union-attr]


def feed_sops(client: TestClient) -> list[str]:
    entries = client.get("/v1/changefeed", params={"includeMetadata": "false", "limit": 1000}).json()
    return [entry["sopInstanceUid"] for entry in entries]


def instance_url(ds: Any) -> str:
    return f"/v1/studies/{ds.StudyInstanceUID}/series/{ds.SeriesInstanceUID}/instances/{ds.SOPInstanceUID}"


def test_dropped_files_are_indexed_once_whatever_the_delivery(
    client: TestClient, services: Services, settings: Settings
) -> None:
    first = make_dataset(patient_id="DROP-1", instance_number=1)
    second = make_dataset(patient_id="DROP-1", study=first.StudyInstanceUID, series=first.SeriesInstanceUID,
                          instance_number=2)
    multiframe = make_dataset(patient_id="DROP-1", frames=3)
    no_patient = make_dataset()
    del no_patient.PatientID
    files = {
        "incoming/study a/1.dcm": to_bytes(first),
        "incoming/study a/2.dcm": to_bytes(second),
        "incoming/multi frame ü.dcm": to_bytes(multiframe),
        "incoming/broken.dcm": b"not a DICOM file",
        "incoming/no-patient.dcm": to_bytes(no_patient),
    }
    events = [
        maker(settings, name, len(data))
        for name, data in files.items() for maker in (event_grid_event, event_grid_event, cloud_event)
    ]
    random.Random(7).shuffle(events)
    early, rest = events[:5], events[5:]

    assert set(deliver(client, services, *early)) == {Outcome.GONE}  # before the blobs exist
    for name, data in files.items():
        drop(settings, name, data)
    outcomes = deliver(client, services, *rest, concurrently=True)
    late = deliver(client, services, *reversed(events))

    assert Outcome.IMPORTED in outcomes and Outcome.INVALID in outcomes
    assert set(outcomes) <= {Outcome.IMPORTED, Outcome.INVALID, Outcome.GONE}
    assert set(late) == {Outcome.GONE}
    found = client.get("/v1/instances", params={"PatientID": "DROP-1"}).json()
    assert len(found) == 3
    assert sorted(feed_sops(client)) == sorted(ds.SOPInstanceUID for ds in (first, second, multiframe))
    assert client.get(instance_url(second), headers={"Accept": DICOM}).content == files["incoming/study a/2.dcm"]
    frame = client.get(instance_url(multiframe) + "/frames/3", headers={"Accept": "application/octet-stream"})
    assert frame.status_code == 200 and len(frame.content) == 4 * 4 * 2
    assert stored_names(settings, layout.INCOMING_PREFIX) == []
    assert len([name for name in stored_names(settings, "instances/") if name.endswith("instance.dcm")]) == 3

    failures = {item["source"]: item for item in client.get("/v1/operations/ingest-failures").json()}
    assert set(failures) == {"incoming/broken.dcm", "incoming/no-patient.dcm"}
    assert "DICM" in failures["incoming/broken.dcm"]["reason"]
    assert "PatientID" in failures["incoming/no-patient.dcm"]["reason"]
    assert failures["incoming/broken.dcm"]["blob"] == "failed/broken.dcm"
    assert stored_names(settings, "failed/") == [
        "failed/broken.dcm", "failed/broken.dcm.failure.json", "failed/no-patient.dcm",
        "failed/no-patient.dcm.failure.json"]


def test_a_stored_instance_event_is_a_no_op_that_reads_nothing(
    client: TestClient, services: Services, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    ds = make_dataset()
    raw = to_bytes(ds)
    assert client.post("/v1/studies", content=raw, headers={"Content-Type": DICOM}).status_code == 200
    key = layout.instance_key(ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID)

    def no_reads(name: str) -> None:
        raise AssertionError(f"the handler read {name}")

    monkeypatch.setattr(services.blobs, "open_reader", no_reads)
    own = [event_grid_event(settings, layout.file_name(key), len(raw)) for _ in range(3)]
    assert deliver(client, services, *own, concurrently=True) == [Outcome.ALREADY_INDEXED] * 3
    others = [
        event_grid_event(settings, layout.metadata_name(key), 100),
        event_grid_event(settings, layout.frames_name(key), 100),
        event_grid_event(settings, "state/event-cursor.json", 20),
        event_grid_event(settings, "failed/x.dcm", 20),
        event_grid_event(settings, "incoming/a.dcm", 20, container="another-container"),
        event_grid_event(settings, layout.file_name(key), 20, event_type="Microsoft.Storage.BlobDeleted"),
    ]
    assert deliver(client, services, *others) == [Outcome.IGNORED] * len(others)
    assert feed_sops(client) == [ds.SOPInstanceUID]


def test_an_unindexed_instance_file_is_indexed_by_its_event(
    client: TestClient, services: Services, settings: Settings
) -> None:
    """The repair of a crash between writing an instance file and indexing it."""
    ds = make_dataset(patient_id="REPAIR-1")
    raw = to_bytes(ds)
    name = layout.file_name(layout.instance_key(ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID))
    drop(settings, name, raw)
    long_ago = datetime.now(UTC) - timedelta(minutes=5)
    events = [event_grid_event(settings, name, len(raw), event_time=long_ago) for _ in range(3)]
    outcomes = deliver(client, services, *events, concurrently=True)
    assert Outcome.INDEXED in outcomes
    assert set(outcomes) <= {Outcome.INDEXED, Outcome.ALREADY_INDEXED}
    assert deliver(client, services, event_grid_event(settings, name, len(raw))) == [Outcome.ALREADY_INDEXED]
    assert len(client.get("/v1/instances", params={"PatientID": "REPAIR-1"}).json()) == 1
    assert client.get(instance_url(ds) + "/metadata").status_code == 200
    assert feed_sops(client) == [ds.SOPInstanceUID]


def test_a_dropped_duplicate_or_invalid_file_is_set_aside_with_its_reason(
    client: TestClient, services: Services, settings: Settings
) -> None:
    ds = make_dataset()
    raw = to_bytes(ds)
    assert client.post("/v1/studies", content=raw, headers={"Content-Type": DICOM}).status_code == 200
    drop(settings, "incoming/again.dcm", raw)
    assert deliver(client, services, event_grid_event(settings, "incoming/again.dcm", len(raw))) == [Outcome.DUPLICATE]
    drop(settings, "incoming/again.dcm", b"garbage")  # a second, different file of the same name fails too
    assert deliver(client, services, event_grid_event(settings, "incoming/again.dcm", 7)) == [Outcome.INVALID]

    failures = client.get("/v1/operations/ingest-failures").json()
    assert [item["blob"] for item in failures][0] == "failed/again.dcm"
    assert failures[0]["reason"].endswith("already stored")
    assert failures[0]["sopInstanceUid"] == ds.SOPInstanceUID
    assert failures[1]["blob"].startswith("failed/again.dcm.") and "DICM" in failures[1]["reason"]
    assert client.get("/v1/operations/ingest-failures", params={"limit": 1}).json() == failures[:1]
    assert client.get("/v1/operations/ingest-failures", params={"limit": 0}).status_code == 400
    assert feed_sops(client) == [ds.SOPInstanceUID]
    assert client.get(instance_url(ds), headers={"Accept": DICOM}).content == raw
