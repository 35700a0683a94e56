"""The drop zone (DATA/blobs/incoming) holds whatever a user put there: only regular files
are imported, special files are set aside with a reason, any name is handled, a file is
taken only once it stopped changing, and its writer cannot change the stored copy."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from dicomweb.api.context import Services
from dicomweb.app import create_app
from dicomweb.settings import Settings
from dicomweb.usecases.blob_created import Outcome
from dicomweb.usecases.dropzone import DropZoneScanner, scan_once
from tests.support.builders import make_dataset, to_bytes


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings.with_(ingest_scan_seconds=0)), base_url="http://testserver") as test_client:
        yield test_client


def _incoming(settings: Settings) -> Path:
    folder = settings.data_dir / "blobs" / "incoming"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _scan(client: TestClient, timeout: float = 10) -> dict[str, Outcome]:
    services: Services = client.app.state.services  # type: ignore[attr-defined]

    async def bounded() -> dict[str, Outcome]:
        return await asyncio.wait_for(scan_once(services.blob_created), timeout)

    return client.portal.call(bounded)


def _failures(client: TestClient) -> dict[str, str]:
    response = client.get("/v1/operations/ingest-failures")
    assert response.status_code == 200
    return {item["source"]: item["reason"] for item in response.json()}


def test_a_symlink_is_set_aside_and_never_followed(client: TestClient, settings: Settings, tmp_path: Path) -> None:
    outside = tmp_path / "outside.dcm"
    ds = make_dataset(patient_id="LINK-1")
    outside.write_bytes(to_bytes(ds))
    os.symlink(outside, _incoming(settings) / "link.dcm")
    assert _scan(client) == {"incoming/link.dcm": Outcome.INVALID}
    assert "symbolic link" in _failures(client)["incoming/link.dcm"]
    assert client.get("/v1/instances", params={"PatientID": "LINK-1"}).json() == []
    assert outside.read_bytes() == to_bytes(ds)  # the target is untouched


def test_a_fifo_is_set_aside_without_stalling_the_scan(client: TestClient, settings: Settings) -> None:
    os.mkfifo(_incoming(settings) / "pipe.dcm")
    ds = make_dataset(patient_id="FIFO-1")
    (_incoming(settings) / "after.dcm").write_bytes(to_bytes(ds))
    started = time.monotonic()
    outcomes = _scan(client)
    assert time.monotonic() - started < 5
    assert outcomes == {"incoming/pipe.dcm": Outcome.INVALID, "incoming/after.dcm": Outcome.IMPORTED}
    assert "FIFO" in _failures(client)["incoming/pipe.dcm"]
    assert len(client.get("/v1/instances", params={"PatientID": "FIFO-1"}).json()) == 1


def test_names_of_any_length_and_characters_are_handled(client: TestClient, settings: Settings) -> None:
    long_name = "n" * 250
    odd_name = "line\nbreak\x1b[31m\tand é.dcm"
    (_incoming(settings) / long_name).write_bytes(b"not dicom")
    (_incoming(settings) / odd_name).write_bytes(b"not dicom either")
    raw = os.fsencode(_incoming(settings)) + b"/latin1-\xe9.dcm"  # not UTF-8
    with open(raw, "wb") as out:
        out.write(to_bytes(make_dataset(patient_id="RAW-1")))
    outcomes = _scan(client)
    assert outcomes[f"incoming/{long_name}"] == Outcome.INVALID
    assert outcomes[f"incoming/{odd_name}"] == Outcome.INVALID
    assert list(outcomes.values()).count(Outcome.IMPORTED) == 1
    failures = _failures(client)
    assert set(failures) == {f"incoming/{long_name}", f"incoming/{odd_name}"}
    assert len(client.get("/v1/instances", params={"PatientID": "RAW-1"}).json()) == 1


def test_the_writer_of_a_dropped_file_cannot_change_the_stored_instance(
    client: TestClient, settings: Settings
) -> None:
    ds = make_dataset(patient_id="HOLD-1", rows=64, columns=64)
    original = to_bytes(ds)
    path = _incoming(settings) / "held.dcm"
    with open(path, "wb") as writer:  # the writer keeps its file open after the import
        writer.write(original)
        writer.flush()
        assert _scan(client) == {"incoming/held.dcm": Outcome.IMPORTED}
        writer.seek(len(original) - 100)
        writer.write(b"\xff" * 100)
        writer.flush()
    url = f"/v1/studies/{ds.StudyInstanceUID}/series/{ds.SeriesInstanceUID}/instances/{ds.SOPInstanceUID}"
    response = client.get(url, headers={"Accept": 'multipart/related; type="application/dicom"'})
    assert response.status_code == 200
    assert original in response.content


def test_a_file_is_taken_only_once_it_stopped_changing(client: TestClient, settings: Settings) -> None:
    services: Services = client.app.state.services  # type: ignore[attr-defined]
    scanner = DropZoneScanner(services.blob_created)
    ds = make_dataset(patient_id="GROW-1")
    data = to_bytes(ds)
    path = _incoming(settings) / "prealloc.dcm"
    with open(path, "wb") as out:  # preallocated: the size is final from the start
        out.truncate(len(data))
    assert client.portal.call(scanner.scan) == {}  # first sight
    with open(path, "r+b") as out:
        out.write(data[: len(data) // 2])
    assert client.portal.call(scanner.scan) == {}  # same size, but it changed: not yet
    with open(path, "r+b") as out:
        out.seek(len(data) // 2)
        out.write(data[len(data) // 2:])
    assert client.portal.call(scanner.scan) == {}
    assert client.portal.call(scanner.scan) == {"incoming/prealloc.dcm": Outcome.IMPORTED}
    assert len(client.get("/v1/instances", params={"PatientID": "GROW-1"}).json()) == 1
