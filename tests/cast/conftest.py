"""One real FHIR R4 server (SEKMET) for the DICOMcast tests; each test uses its own patients
and studies, so they share it (its start costs ~10 s)."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from dicomweb.usecases.cast.mapping import study_identifier
from tests.support.fhir import FhirServer


@pytest.fixture(scope="session")
def fhir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FhirServer]:
    server = FhirServer(Path(tmp_path_factory.mktemp("fhir")))
    yield server
    server.stop()


@pytest.fixture
def patient_id() -> str:
    return f"PID-{uuid.uuid4().hex[:12]}"


def imaging_studies(fhir: FhirServer, study_uid: str) -> list[dict[str, Any]]:
    token = study_identifier(study_uid)
    return fhir.search("ImagingStudy", identifier=f"{token['system']}|{token['value']}")


def patients(fhir: FhirServer, patient_id: str, system: str | None = None) -> list[dict[str, Any]]:
    return fhir.search("Patient", identifier=f"{system}|{patient_id}" if system else patient_id)


def wait_for(check: Callable[[], Any], timeout: float = 30.0, what: str = "the FHIR server to agree") -> Any:
    """Poll ``check`` until it returns something truthy; fail with ``what`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.1)


def shape(study: dict[str, Any]) -> dict[str, Any]:
    """Series UID → instance UIDs, and the counts, of an ImagingStudy."""
    return {
        "series": {series["uid"]: sorted(i["uid"] for i in series.get("instance", [])) for series in study.get(
            "series", [])},
        "numberOfSeries": study.get("numberOfSeries"),
        "numberOfInstances": study.get("numberOfInstances"),
        "seriesCounts": [series.get("numberOfInstances") for series in study.get("series", [])],
    }
