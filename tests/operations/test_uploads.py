"""Upload sessions: ``POST /v1/uploads`` → a URL for one new file under ``incoming/``, which is
then imported by its BlobCreated event. Embedded: the server receives the file itself. Azure:
a create/write-only SAS straight to Blob Storage (Azurite), tested with a large file
(``DICOMWEB_TEST_UPLOAD_BYTES``, 256 MB by default; the 2 GB run is ``python -m bench.upload_bench``)
while the server's memory stays bounded."""

from __future__ import annotations

import os
import resource
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from azure.core.exceptions import HttpResponseError
from azure.storage.blob import BlobClient
from starlette.testclient import TestClient

from dicomweb.api.context import Services
from dicomweb.settings import Settings
from dicomweb.storage.blob_events import BlobCreated
from dicomweb.usecases.blob_created import Outcome
from tests.support.builders import make_dataset, to_bytes, write_large_instance

STUDY = "1.2.826.0.1.3680043.8.498.7004"
UPLOAD_BYTES = int(os.environ.get("DICOMWEB_TEST_UPLOAD_BYTES", str(256 << 20)))


def _session(client: TestClient) -> dict[str, str]:
    response = client.post("/v1/uploads")
    assert response.status_code == 201, response.text
    session = response.json()
    expires = datetime.strptime(session["expiresOn"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    assert 3000 < (expires - datetime.now(UTC)).total_seconds() <= 3600
    return session


def _wait_for_instance(client: TestClient, sop: str) -> None:
    deadline = time.monotonic() + 20
    while not client.get(f"/v1/studies/{STUDY}/instances", params={"SOPInstanceUID": sop}).json():
        assert time.monotonic() < deadline, "the uploaded file was not imported"
        time.sleep(0.1)


def test_embedded_upload_url_receives_the_file_and_imports_it(client: TestClient) -> None:
    session = _session(client)
    ds = make_dataset(study=STUDY)
    assert client.put(session["uploadUrl"], content=to_bytes(ds)).status_code == 201
    _wait_for_instance(client, str(ds.SOPInstanceUID))

    again = client.put(session["uploadUrl"], content=to_bytes(make_dataset(study=STUDY)))
    assert again.status_code == 409 and "used already" in again.json()["message"]
    token = session["uploadUrl"].rsplit("/", 1)[1]
    forged = client.put(f"/v1/uploads/{token[:-4]}AAAA", content=b"x")
    assert forged.status_code == 403 and "not issued by this server" in forged.json()["message"]
    assert client.put(_session(client)["uploadUrl"], content=b"").status_code == 400


def test_embedded_upload_keeps_stows_size_limit(tmp_path: Path) -> None:
    with TestClient(_app(Settings(data_dir=tmp_path / "data", max_request_bytes=1000,
                                  allowed_hosts=("testserver",)))) as client:
        response = client.put(_session(client)["uploadUrl"], content=b"x" * 2000)
        assert response.status_code == 413


def _app(settings: Settings) -> object:
    from dicomweb.app import create_app

    return create_app(settings)


def _max_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


@pytest.mark.parametrize("backend", ["azure"], indirect=True)
def test_azure_upload_goes_straight_to_blob_storage(client: TestClient, settings: Settings, tmp_path: Path) -> None:
    session = _session(client)
    url = session["uploadUrl"]
    assert "/incoming/uploads/" in url and "sp=cw" in url  # create and write only
    source = tmp_path / "large.dcm"
    sop = write_large_instance(str(source), UPLOAD_BYTES, study=STUDY)
    memory_before = _max_rss_mb()

    started = time.monotonic()
    blob = BlobClient.from_blob_url(url, max_block_size=8 << 20, max_single_put_size=8 << 20)
    with open(source, "rb") as data:
        blob.upload_blob(data, max_concurrency=4)
    upload_seconds = time.monotonic() - started
    with pytest.raises(HttpResponseError) as refused:
        blob.download_blob().readall()  # the SAS allows no reads
    assert refused.value.status_code == 403
    listing = httpx.get(url.split("/incoming/")[0] + "?restype=container&comp=list&" + url.split("?", 1)[1])
    assert listing.status_code == 403  # nor listing the container

    services: Services = client.app.state.services  # type: ignore[attr-defined]
    name = url.split(f"/{settings.blob_container}/", 1)[1].split("?", 1)[0]
    outcome = client.portal.call(services.blob_created.handle, BlobCreated(settings.blob_container, name))  # type: ignore[union-attr]
    assert outcome is Outcome.IMPORTED
    _wait_for_instance(client, sop)
    grown = _max_rss_mb() - memory_before
    print(f"uploaded {UPLOAD_BYTES / 1e6:.0f} MB in {upload_seconds:.1f} s; max RSS grew {grown:.0f} MB")
    assert grown < 200, f"the server's memory grew by {grown:.0f} MB for a {UPLOAD_BYTES >> 20} MB upload"
