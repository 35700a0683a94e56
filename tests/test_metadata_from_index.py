"""Series metadata served from the index's header JSON (dicomweb/api/wado/metadata.py) is the
metadata the sidecar files hold, parsed equal, with the same ETag and 304 semantics."""

from __future__ import annotations

import json
import uuid

import pytest
from starlette.testclient import TestClient

from dicomcore import layout
from dicomweb.usecases.sidecars import ROOT_TOKEN
from tests.support.builders import make_dataset, many_instances, multipart_body, to_bytes

pytestmark = pytest.mark.both_backends


def _series(client: TestClient) -> tuple[str, str]:
    """A 50-instance series: 45 alike, and 5 with frames (BulkDataURIs), other sizes and a
    non-ASCII name."""
    study = f"1.2.826.0.1.3680043.8.498.{uuid.uuid4().int % 10**12}"  # short: many_instances extends it
    first = make_dataset(study=study, rows=16, columns=16, frames=3)
    varied = [first] + [make_dataset(study=first.StudyInstanceUID, series=first.SeriesInstanceUID, rows=8 + n,
                                     columns=8, frames=n, instance_number=n + 1, patient_name="MÜLLER^ÅSA")
                        for n in range(1, 5)]
    for ds in varied[1:]:
        ds.SpecificCharacterSet = "ISO_IR 192"
    alike = many_instances(first.StudyInstanceUID, 45)
    body, content_type = multipart_body([to_bytes(ds) for ds in varied] + alike)
    stored = client.post("/v1/studies", content=body, headers={"Content-Type": content_type})
    assert stored.status_code == 200, stored.text
    series = client.get(f"/v1/studies/{first.StudyInstanceUID}/series").json()
    assert len(series) == 2  # many_instances makes its own series
    return first.StudyInstanceUID, first.SeriesInstanceUID


def _from_sidecars(client: TestClient, study: str, series: str | None) -> list[dict]:
    """What the metadata was before: the sidecar files, in index order, root filled in."""
    services = client.app.state.services  # type: ignore[attr-defined]
    records = client.portal.call(services.index.list_instances, study, series)  # type: ignore[union-attr]
    raw = client.portal.call(services.sidecars.read_metadata_many,  # type: ignore[union-attr]
                             [record.instance_key for record in records])
    root = "http://testserver/v1"
    return [json.loads(document.decode().replace(ROOT_TOKEN, root)) for document in raw]


def test_metadata_from_the_index_equals_the_sidecars(client: TestClient) -> None:
    study, series = _series(client)
    for url, series_uid in ((f"/v1/studies/{study}/series/{series}/metadata", series),
                            (f"/v1/studies/{study}/metadata", None)):
        response = client.get(url, headers={"Accept": "application/dicom+json"})
        assert response.status_code == 200
        served = response.json()
        assert served == _from_sidecars(client, study, series_uid)
        assert len(served) == (5 if series_uid else 50)
        assert any("BulkDataURI" in element for item in served for element in item.values())
        assert all(element["BulkDataURI"].startswith("http://testserver/v1/studies/")
                   for item in served for element in item.values() if "BulkDataURI" in element)
        assert "00020010" not in served[0]


def test_etag_and_304_follow_the_index(client: TestClient) -> None:
    study, series = _series(client)
    url = f"/v1/studies/{study}/series/{series}/metadata"
    first = client.get(url)
    etag = first.headers["etag"]
    assert client.get(url, headers={"If-None-Match": etag}).status_code == 304
    assert client.get(url, headers={"If-None-Match": f'"other", {etag}'}).status_code == 304
    added = make_dataset(study=study, series=series, instance_number=9)
    body, content_type = multipart_body([to_bytes(added)])
    assert client.post("/v1/studies", content=body, headers={"Content-Type": content_type}).status_code == 200
    again = client.get(url, headers={"If-None-Match": etag})
    assert again.status_code == 200 and again.headers["etag"] != etag and len(again.json()) == 6


def test_a_lost_sidecar_does_not_matter_and_a_ghost_is_404(client: TestClient) -> None:
    study, series = _series(client)
    url = f"/v1/studies/{study}/series/{series}/metadata"
    expected = client.get(url).json()
    services = client.app.state.services  # type: ignore[attr-defined]
    records = client.portal.call(services.index.list_instances, study, series)  # type: ignore[union-attr]
    client.portal.call(services.blobs.delete, layout.metadata_name(records[1].instance_key))  # type: ignore
    assert client.get(url).json() == expected
    for name in (layout.file_name(records[2].instance_key), layout.metadata_name(records[2].instance_key)):
        client.portal.call(services.blobs.delete, name)  # type: ignore[union-attr]
    gone = client.get(url)
    assert gone.status_code == 404 and "gone" in gone.json()["message"]
    assert len(client.get(url).json()) == 4  # its record was removed
