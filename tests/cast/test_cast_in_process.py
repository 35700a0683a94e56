"""DICOMcast inside the server process (DICOMWEB_FHIR_URL set), on both backends, against a
real FHIR R4 server: a multi-series study, deletes down to nothing, an invalid birth date
recorded and listed over HTTP, then retried."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from pydicom.uid import generate_uid
from starlette.testclient import TestClient

from dicomweb.app import create_app
from dicomweb.settings import Settings
from tests.cast.conftest import imaging_studies, patients, shape, wait_for
from tests.support.builders import DICOM, make_dataset, to_bytes
from tests.support.fhir import FhirServer

pytestmark = pytest.mark.both_backends

SYSTEM = "urn:oid:2.25.4242"


@pytest.fixture
def cast_client(settings: Settings, fhir: FhirServer) -> Iterator[TestClient]:
    configured = settings.with_(fhir_url=fhir.base_url, fhir_patient_system=SYSTEM, cast_poll_seconds=0.2)
    with TestClient(create_app(configured), base_url="http://testserver") as client:
        yield client


def _store(client: TestClient, **attributes: object) -> None:
    response = client.post("/v1/studies", content=to_bytes(make_dataset(**attributes)),  # type: ignore[arg-type]
                           headers={"Content-Type": DICOM})
    assert response.status_code == 200, response.text


def test_study_follows_the_archive(cast_client: TestClient, fhir: FhirServer, patient_id: str) -> None:
    study, first, second = generate_uid(), generate_uid(), generate_uid()
    sops = {first: [generate_uid() for _ in range(3)], second: [generate_uid() for _ in range(2)]}
    for number, (series, uids) in enumerate(sops.items(), start=1):
        for index, sop in enumerate(uids, start=1):
            _store(cast_client, study=study, series=series, sop=sop, patient_id=patient_id, instance_number=index,
                   series_number=number, modality="CT" if number == 1 else "MR")

    expected = {"series": {series: sorted(uids) for series, uids in sops.items()}, "numberOfSeries": 2,
                "numberOfInstances": 5, "seriesCounts": [3, 2]}
    found = wait_for(lambda: [s for s in imaging_studies(fhir, study) if shape(s) == expected])
    assert len(found) == 1
    [patient] = patients(fhir, patient_id, SYSTEM)
    assert found[0]["subject"]["reference"] == f"Patient/{patient['id']}"
    assert [m["code"] for m in found[0]["modality"]] == ["CT", "MR"]

    # One instance, then a whole series, then the rest: the ImagingStudy shrinks, then goes.
    assert cast_client.delete(f"/v1/studies/{study}/series/{first}/instances/{sops[first][0]}").status_code == 204
    wait_for(lambda: [s for s in imaging_studies(fhir, study) if s.get("numberOfInstances") == 4])
    assert cast_client.delete(f"/v1/studies/{study}/series/{first}").status_code == 204
    remaining = wait_for(lambda: [s for s in imaging_studies(fhir, study) if s.get("numberOfSeries") == 1])
    assert shape(remaining[0])["series"] == {second: sorted(sops[second])}
    assert cast_client.delete(f"/v1/studies/{study}").status_code == 204
    wait_for(lambda: not imaging_studies(fhir, study), what="the ImagingStudy to be deleted")
    assert len(patients(fhir, patient_id, SYSTEM)) == 1, "Patients are never deleted"


def test_invalid_birth_date_is_listed_and_retried(cast_client: TestClient, fhir: FhirServer, patient_id: str) -> None:
    bad, good = generate_uid(), generate_uid()
    dataset = make_dataset(study=bad, patient_id=patient_id)
    dataset.PatientBirthDate = "19701345"
    response = cast_client.post("/v1/studies", content=to_bytes(dataset), headers={"Content-Type": DICOM})
    assert response.status_code == 200, response.text
    _store(cast_client, study=good, patient_id=patient_id)

    wait_for(lambda: imaging_studies(fhir, good), what="the study after the invalid one")
    failures = wait_for(lambda: cast_client.get("/v1/operations/cast-failures").json())
    assert [failure["studyInstanceUid"] for failure in failures] == [bad]
    assert "PatientBirthDate" in failures[0]["reason"] and "19701345" not in failures[0]["reason"]
    assert not imaging_studies(fhir, bad)

    still = cast_client.post("/v1/operations/cast-failures/retry", params={"study": bad})
    assert still.status_code == 200 and [f["studyInstanceUid"] for f in still.json()] == [bad]
    assert cast_client.delete(f"/v1/studies/{bad}").status_code == 204
    # Nothing left of the study: the retry now succeeds (there is nothing to sync) and clears it.
    wait_for(lambda: cast_client.post("/v1/operations/cast-failures/retry").json() == [])
    assert cast_client.get("/v1/operations/cast-failures").json() == []
    assert cast_client.post("/v1/operations/cast-failures/retry", params={"study": "x y"}).status_code == 400


def test_failures_listing_without_cast_is_404(client: TestClient) -> None:
    response = client.get("/v1/operations/cast-failures")
    assert response.status_code == 404 and "DICOMWEB_FHIR_URL" in response.json()["message"]

