"""How the embedded server delivers blob-created events: the store announces its writes on
an in-process bus, a periodic scan finds files copied into DATA/blobs/incoming, and
``dicomweb ingest`` scans once. All of them call the handler Event Grid calls in Azure."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from dicomweb.api.context import Services
from dicomweb.app import create_app
from dicomweb.cli import main
from dicomweb.composition import build_services
from dicomweb.settings import Settings
from dicomweb.usecases import blob_created, dropzone
from dicomweb.usecases.blob_created import BlobCreatedHandler, Outcome
from tests.support.blob_drops import drop, stored_names
from tests.support.builders import DICOM, make_dataset, to_bytes


@pytest.fixture
def recorded(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[tuple[str, Outcome]]]:
    """Every (blob name, outcome) the bus's handler produces."""
    seen: list[tuple[str, Outcome]] = []
    original = BlobCreatedHandler.handle_event

    async def record(handler: BlobCreatedHandler, payload: dict[str, Any]) -> Outcome:
        outcome = await original(handler, payload)
        seen.append((payload["subject"].split("/blobs/", 1)[1], outcome))
        return outcome

    monkeypatch.setattr(BlobCreatedHandler, "handle_event", record)
    monkeypatch.setattr(blob_created, "SETTLE_SECONDS", 0.3)
    yield seen


def test_stow_writes_raise_no_events_and_dropped_files_do(
    settings: Settings, recorded: list[tuple[str, Outcome]]
) -> None:
    """STOW indexes its own files before answering, so the bus delivers no event for them
    (they only cost index reads); a file written into the drop zone is still delivered."""
    datasets = [make_dataset(instance_number=i) for i in range(3)]
    with TestClient(create_app(settings.with_(ingest_scan_seconds=0))) as client:
        for ds in datasets:
            assert client.post("/v1/studies", content=to_bytes(ds), headers={"Content-Type": DICOM}).status_code == 200
        services: Services = client.app.state.services  # type: ignore[attr-defined]
        client.portal.call(services.blob_events.drain)  # type: ignore[union-attr]
        assert recorded == []
        dropped = make_dataset(patient_id="BUS-1")
        client.portal.call(services.blobs.put_bytes, "incoming/bus/one.dcm", to_bytes(dropped))
        client.portal.call(services.blob_events.drain)  # type: ignore[union-attr]
        assert recorded == [("incoming/bus/one.dcm", Outcome.IMPORTED)]
        assert len(client.get("/v1/instances", params={"PatientID": "BUS-1"}).json()) == 1
        feed = client.get("/v1/changefeed", params={"includeMetadata": "false"}).json()
    assert len(feed) == 4


def test_files_copied_into_the_drop_folder_are_imported_by_the_periodic_scan(settings: Settings) -> None:
    ds = make_dataset(patient_id="SCAN-1")
    with TestClient(create_app(settings.with_(ingest_scan_seconds=0.05))) as client:
        drop(settings, "incoming/scan/one.dcm", to_bytes(ds))
        drop(settings, "incoming/.one.dcm.partial", to_bytes(make_dataset(patient_id="SCAN-1")))
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not client.get("/v1/instances", params={"PatientID": "SCAN-1"}).json():
            time.sleep(0.05)
        assert len(client.get("/v1/instances", params={"PatientID": "SCAN-1"}).json()) == 1
    assert stored_names(settings, "incoming/") == ["incoming/.one.dcm.partial"]  # still being copied: left alone


def test_dicomweb_ingest_imports_the_drop_folder_once(settings: Settings, capsys: pytest.CaptureFixture[str]) -> None:
    data = settings.data_dir
    good = [make_dataset(patient_id="CLI-1", instance_number=i) for i in range(2)]
    for i, ds in enumerate(good):
        drop(settings, f"incoming/{i}.dcm", to_bytes(ds))
    assert main(["ingest", "--data", str(data)]) == 0
    assert "2 imported" in capsys.readouterr().out
    drop(settings, "incoming/bad.dcm", b"nope")
    assert main(["ingest", "--data", str(data)]) == 1
    assert "1 invalid" in capsys.readouterr().out
    assert main(["ingest", "--data", str(data)]) == 0
    assert "nothing to import" in capsys.readouterr().out
    with TestClient(create_app(settings)) as client:
        assert len(client.get("/v1/instances", params={"PatientID": "CLI-1"}).json()) == 2
        assert [item["source"] for item in client.get("/v1/operations/ingest-failures").json()] == ["incoming/bad.dcm"]


def test_a_file_whose_import_keeps_failing_is_set_aside_after_a_few_scans(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def broken(handler: BlobCreatedHandler, payload: dict[str, Any]) -> Outcome:
        raise ConnectionError("index unreachable")

    monkeypatch.setattr(BlobCreatedHandler, "handle_event", broken)
    drop(settings, "incoming/stuck.dcm", b"anything")

    async def scans() -> list[dict[str, Outcome]]:
        services = build_services(settings)
        try:
            scanner = dropzone.DropZoneScanner(services.blob_created)
            return [await scanner.scan() for _ in range(dropzone.MAX_ATTEMPTS + 1)]
        finally:
            await services.close()

    results = asyncio.run(scans())
    # The first scan only notes the size; then MAX_ATTEMPTS tries, the last of which sets it aside.
    assert results[:-1] == [{}] * dropzone.MAX_ATTEMPTS
    assert results[-1] == {"incoming/stuck.dcm": Outcome.FAILED}
    note = (Path(settings.data_dir) / "blobs" / "failed" / "stuck.dcm.failure.json").read_text()
    assert "import failed 5 times" in note and "index unreachable" in note
