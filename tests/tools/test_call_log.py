"""The bench's cloud-call log (DICOMWEB_BENCH_CALL_LOG): each Azure SDK call of the server is
one line naming its service and kind, with no URL, UID or value in it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from dicomweb.app import create_app
from dicomweb.settings import Settings
from dicomweb.storage.call_log import CALL_LOG_ENV
from tests.support.builders import DICOM, make_dataset, to_bytes


@pytest.mark.parametrize("backend", ["azure"], indirect=True)
def test_a_stow_and_a_frame_get_are_logged_by_kind_without_patient_data(
        settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    log = tmp_path / "calls.jsonl"
    monkeypatch.setenv(CALL_LOG_ENV, str(log))
    ds = make_dataset(patient_id="SECRET-ID-42", patient_name="SECRET^NAME")
    with TestClient(create_app(settings), base_url="http://testserver") as client:
        response = client.post("/v1/studies", content=to_bytes(ds), headers={"Content-Type": DICOM})
        assert response.status_code == 200, response.text
        stowed = len(log.read_text().splitlines())
        url = (f"/v1/studies/{ds.StudyInstanceUID}/series/{ds.SeriesInstanceUID}/instances/{ds.SOPInstanceUID}"
               "/frames/1")
        assert client.get(url, headers={"Accept": "application/octet-stream; transfer-syntax=*"}).status_code == 200
    text = log.read_text()
    calls = [json.loads(line) for line in text.splitlines()]
    kinds = {(call["service"], call["kind"]) for call in calls[:stowed]}
    assert ("cosmos", "write") in kinds and ("blob", "write") in kinds
    frame_calls = calls[stowed:]
    assert any(call["service"] == "blob" and call["kind"] == "read" and call["ranged"] for call in frame_calls)
    for secret in ("SECRET", ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID):
        assert secret not in text
