"""The Azure Functions timer runs DICOMcast: declared as a timer trigger, and one tick
syncs what was stored (the function app's embedded defaults, a real FHIR R4 server)."""

from __future__ import annotations

import asyncio
import importlib
import json
import sys
from pathlib import Path

import pytest
from pydicom.uid import generate_uid
from starlette.testclient import TestClient

from dicomweb.app import create_app
from tests.cast.conftest import imaging_studies
from tests.support.builders import DICOM, make_dataset, to_bytes
from tests.support.fhir import FhirServer

ROOT = Path(__file__).resolve().parents[2]


def test_the_timer_syncs_the_feed(tmp_path: Path, fhir: FhirServer, patient_id: str,
                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DICOMWEB_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("DICOMWEB_FHIR_URL", fhir.base_url)
    monkeypatch.syspath_prepend(str(ROOT))
    sys.modules.pop("function_app", None)
    function_app = importlib.import_module("function_app")
    try:
        functions = {function.get_function_name(): function for function in function_app.app.get_functions()}
        [trigger] = json.loads(functions["dicomcast"].get_function_json())["bindings"]
        assert trigger["type"] == "timerTrigger" and trigger["schedule"] == "*/30 * * * * *"

        services = function_app.services
        assert services.settings.cast_poll_seconds == 0, "no second runner beside the timer"
        study = generate_uid()
        with TestClient(create_app(services.settings, services), base_url="http://127.0.0.1") as client:
            for number in (1, 2):
                response = client.post("/v1/studies", headers={"Content-Type": DICOM}, content=to_bytes(
                    make_dataset(study=study, patient_id=patient_id, instance_number=number)))
                assert response.status_code == 200
        assert not imaging_studies(fhir, study)
        tick = functions["dicomcast"].get_user_function()
        asyncio.run(tick(None))
        [imaging] = imaging_studies(fhir, study)
        assert imaging["numberOfInstances"] == 2
    finally:
        sys.modules.pop("function_app", None)
