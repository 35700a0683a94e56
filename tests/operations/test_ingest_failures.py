"""The drop zone's failures list: offset paging, entries whose file was since imported are
dropped, and one failure can be cleared."""

from __future__ import annotations

import time
from pathlib import Path

from starlette.testclient import TestClient

from dicomweb.app import create_app
from dicomweb.settings import Settings
from tests.support.blob_drops import drop
from tests.support.builders import make_dataset, to_bytes


def _failures(client: TestClient, **params: int) -> list[dict[str, object]]:
    response = client.get("/v1/operations/ingest-failures", params=params)
    assert response.status_code == 200, response.text
    body: list[dict[str, object]] = response.json()
    return body


def _wait_for_failures(client: TestClient, count: int) -> None:
    deadline = time.monotonic() + 20
    while len(_failures(client)) < count:
        assert time.monotonic() < deadline
        time.sleep(0.1)


def test_failures_page_drop_fixed_files_and_can_be_cleared(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data", ingest_scan_seconds=0.2, allowed_hosts=("testserver",))
    with TestClient(create_app(settings)) as client:
        dataset = make_dataset()
        instance = to_bytes(dataset)
        dicom = {"Content-Type": "application/dicom"}
        assert client.post("/v1/studies", content=instance, headers=dicom).status_code == 200
        drop(settings, "incoming/a-copy.dcm", instance)  # fails: already stored (its note has the UIDs)
        drop(settings, "incoming/b-junk.dcm", b"junk")
        drop(settings, "incoming/c-junk.dcm", b"more junk")
        _wait_for_failures(client, 3)

        names = [entry["blob"] for entry in _failures(client)]
        assert [entry["blob"] for entry in _failures(client, limit=1, offset=1)] == names[1:2]
        assert _failures(client, offset=3) == []
        assert client.get("/v1/operations/ingest-failures", params={"offset": -1}).status_code == 400

        assert client.delete("/v1/operations/ingest-failures/c-junk.dcm").status_code == 204
        assert client.delete("/v1/operations/ingest-failures/c-junk.dcm").status_code == 404
        assert [entry["blob"] for entry in _failures(client)] == names[:2]

        # The instance is deleted, then stored again: the older failure no longer matters.
        assert client.delete(f"/v1/studies/{dataset.StudyInstanceUID}").status_code == 204
        assert client.post("/v1/studies", content=instance, headers=dicom).status_code == 200
        assert [entry["blob"] for entry in _failures(client)] == ["failed/b-junk.dcm"]

