"""Bulk import over HTTP, on the embedded store and on the Azure adapters (Azurite, Cosmos)."""

from __future__ import annotations

import json
import uuid

import pytest
from starlette.testclient import TestClient

from dicomweb.settings import Settings
from tests.support.builders import make_dataset, to_bytes
from tests.support.import_area import import_names, put_import_files, wait_for_operation

pytestmark = pytest.mark.both_backends

STUDY = "1.2.826.0.1.3680043.8.498.7001"


@pytest.fixture
def settings(settings: Settings) -> Settings:
    # A fresh import container per Azure test (the embedded one is under the test's folder).
    return settings.with_(import_container=f"import-{uuid.uuid4().hex[:12]}")


def _instances(count: int, study: str = STUDY) -> dict[str, bytes]:
    return {f"batch-7/{i:03d}.dcm": to_bytes(make_dataset(study=study, instance_number=i + 1)) for i in range(count)}


def _start(client: TestClient, body: object) -> dict[str, str]:
    response = client.post("/v1/import", json=body)
    assert response.status_code == 202, response.text
    started = response.json()
    assert response.headers["Location"] == started["href"]
    assert started["href"].endswith(f"/v1/operations/{started['id']}")
    return started


def _import(client: TestClient, prefix: str, **extra: object) -> dict[str, object]:
    started = _start(client, {"source": {"prefix": prefix}, **extra})
    return wait_for_operation(client.get, started["href"])


def test_import_stores_indexes_and_feeds_each_file_once(client: TestClient, settings: Settings) -> None:
    files = _instances(12)
    files["batch-7/sub/not-dicom.txt"] = b"hello, not a DICOM file"
    files["batch-7/truncated.dcm"] = to_bytes(make_dataset(study=STUDY, rows=64, columns=64))[:-3000]
    files["other/elsewhere.dcm"] = to_bytes(make_dataset(study=STUDY))
    put_import_files(settings, files)

    operation = _import(client, "batch-7/")

    assert operation["status"] == "succeeded" and operation["type"] == "import"
    assert operation["percentComplete"] == 100
    results = operation["results"]
    assert {key: results[key] for key in ("imported", "skipped", "failed")} == {"imported": 12, "skipped": 0,
                                                                               "failed": 2}
    instances = client.get(f"/v1/studies/{STUDY}/instances").json()
    assert len(instances) == 12
    feed = client.get("/v1/changefeed", params={"limit": 100}).json()
    assert len(feed) == 12 and len({entry["sopInstanceUid"] for entry in feed}) == 12
    errors = [json.loads(line) for line in client.get(results["errorHref"]).text.splitlines()]
    assert sorted(error["file"] for error in errors) == ["batch-7/sub/not-dicom.txt", "batch-7/truncated.dcm"]
    assert all(error["error"] and error["timestamp"] for error in errors)
    assert len(import_names(settings, "batch-7/")) == 14  # the sources stay

    again = _import(client, "batch-7/")  # a second run stores nothing twice
    assert (again["results"]["imported"], again["results"]["skipped"], again["results"]["failed"]) == (0, 12, 2)
    assert len(client.get("/v1/changefeed", params={"limit": 100}).json()) == 12


def test_delete_source_removes_imported_files(client: TestClient, settings: Settings) -> None:
    put_import_files(settings, _instances(3))
    operation = _import(client, "batch-7/", deleteSource=True)
    assert operation["results"]["imported"] == 3
    assert import_names(settings, "batch-7/") == []


def test_a_prefix_matching_nothing_succeeds_with_zero_counts(client: TestClient) -> None:
    operation = _import(client, "nothing-here/")
    assert operation["status"] == "succeeded"
    assert {key: operation["results"][key] for key in ("imported", "skipped", "failed")} == {
        "imported": 0, "skipped": 0, "failed": 0}


def test_operations_list_get_and_cancel(client: TestClient, settings: Settings) -> None:
    put_import_files(settings, _instances(2))
    first = _import(client, "batch-7/")
    second = _import(client, "nothing/")
    listed = client.get("/v1/operations").json()
    assert [op["operationId"] for op in listed] == [second["operationId"], first["operationId"]]
    assert [op["operationId"] for op in client.get("/v1/operations", params={"limit": 1, "offset": 1}).json()] == [
        first["operationId"]]
    assert client.get("/v1/operations", params={"status": "running"}).json() == []
    assert len(client.get("/v1/operations", params={"status": "succeeded", "type": "import"}).json()) == 2
    assert client.get("/v1/operations", params={"status": "done"}).status_code == 400

    finished = client.post(f"/v1/operations/{first['operationId']}/cancel")
    assert finished.status_code == 409 and "already ended" in finished.json()["message"]
    assert client.get(f"/v1/operations/{uuid.uuid4().hex}").status_code == 404
    assert client.post(f"/v1/operations/{uuid.uuid4().hex}/cancel").status_code == 404
    malformed = client.get("/v1/operations/not-a-guid")
    assert malformed.status_code == 400 and "GUID" in malformed.json()["message"]
    hyphenated = str(uuid.UUID(first["operationId"]))
    assert client.get(f"/v1/operations/{hyphenated}").json()["operationId"] == first["operationId"]


def test_an_instance_twice_in_one_batch_is_stored_once(client: TestClient, settings: Settings) -> None:
    # A chunk is every 8th name of a page (import_files.PARALLEL), so files i and i + 8 are
    # stored in one batch: the second copy's name is taken by the first's.
    datasets = [make_dataset(study=STUDY, instance_number=i + 1) for i in range(8)]
    files = {f"twice/{i:03d}.dcm": to_bytes(datasets[i % 8]) for i in range(16)}
    put_import_files(settings, files)

    operation = _import(client, "twice/")

    results = operation["results"]
    assert (results["imported"], results["skipped"], results["failed"]) == (8, 8, 0)
    assert len(client.get("/v1/changefeed", params={"limit": 100}).json()) == 8
    for ds in datasets:  # indexed, and its sidecars written: metadata and the file come back
        url = f"/v1/studies/{STUDY}/series/{ds.SeriesInstanceUID}/instances/{ds.SOPInstanceUID}"
        assert client.get(url + "/metadata").json()[0]["00080018"]["Value"] == [ds.SOPInstanceUID]
        assert client.get(url, headers={"Accept": "application/dicom"}).content == to_bytes(ds)
