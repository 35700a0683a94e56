"""DELETE at the HTTP level: 204, then 404 everywhere and gone from QIDO."""

from __future__ import annotations

import pytest
from starlette.testclient import TestClient

from tests.support.builders import make_dataset, multipart_body, to_bytes

pytestmark = pytest.mark.both_backends


def _store(client: TestClient, *datasets) -> None:
    body, content_type = multipart_body([to_bytes(ds) for ds in datasets])
    assert client.post("/v1/studies", content=body, headers={"Content-Type": content_type}).status_code == 200


def test_delete_instance_series_and_study(client: TestClient) -> None:
    a = make_dataset(patient_id="DEL-1")
    b = make_dataset(study=a.StudyInstanceUID, series=a.SeriesInstanceUID, patient_id="DEL-1", instance_number=2)
    c = make_dataset(study=a.StudyInstanceUID, patient_id="DEL-1", instance_number=3)
    _store(client, a, b, c)
    study_url = f"/v1/studies/{a.StudyInstanceUID}"
    instance_url = f"{study_url}/series/{a.SeriesInstanceUID}/instances/{a.SOPInstanceUID}"

    assert client.delete(instance_url).status_code == 204
    assert client.get(instance_url).status_code == 404
    assert client.get(instance_url + "/metadata").status_code == 404
    assert client.get(instance_url + "/frames/1").status_code == 404
    assert len(client.get(study_url + "/metadata").json()) == 2
    assert client.delete(instance_url).status_code == 404

    assert client.delete(f"{study_url}/series/{a.SeriesInstanceUID}").status_code == 204
    assert len(client.get(study_url + "/metadata").json()) == 1

    assert client.delete(study_url).status_code == 204
    assert client.get(study_url).status_code == 404
    assert client.get("/v1/studies", params={"PatientID": "DEL-1"}).json() == []
    assert client.get("/v1/instances", params={"PatientID": "DEL-1"}).json() == []


def test_deleted_instance_can_be_stored_again(client: TestClient) -> None:
    ds = make_dataset()
    _store(client, ds)
    assert client.delete(f"/v1/studies/{ds.StudyInstanceUID}").status_code == 204
    _store(client, ds)
    assert client.get(f"/v1/studies/{ds.StudyInstanceUID}/metadata").status_code == 200


def test_delete_with_invalid_uid_is_400(client: TestClient) -> None:
    assert client.delete("/v1/studies/abc").status_code == 400
