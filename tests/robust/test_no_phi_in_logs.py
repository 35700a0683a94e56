"""No patient data in logs: invalid instances carrying a known patient name and ID are
sent (STOW), dropped (drop zone) and asked for, and neither a log record nor the server's
stderr holds the name or the ID."""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from pydicom import Dataset
from pydicom.dataelem import RawDataElement
from pydicom.tag import BaseTag
from starlette.testclient import TestClient

from dicomweb.api.context import Services
from dicomweb.app import create_app
from dicomweb.settings import Settings
from dicomweb.usecases.dropzone import scan_once
from tests.support.builders import DICOM, make_dataset, multipart_body, to_bytes
from tests.support.hostile import deflate_bomb
from tests.support.servers import ServerProcess

NAME = "ZZSECRET^PATIENTNAME"
PATIENT_ID = "ID-SECRET-4711"
SECRETS = ("ZZSECRET", "PATIENTNAME", "SECRET-4711")
INFLATE_LIMIT = 16 * 1024**2
"""Lowered from the default so that the deflate bomb among the inputs is cheap to refuse."""


def _patient(**changes: str) -> Dataset:
    return make_dataset(patient_name=NAME, patient_id=PATIENT_ID, **changes)  # type: ignore[arg-type]


def _raw(ds: Dataset, tag: int, vr: str, text: str) -> None:
    """An element written as given, past pydicom's checks (as a faulty modality would)."""
    value = text.encode("latin-1")
    value += b" " * (len(value) % 2)
    ds[tag] = RawDataElement(BaseTag(tag), vr, len(value), value, 0, False, True)  # type: ignore[assignment]


def invalid_instances() -> list[bytes]:
    """Each fails in a different place, each with the known name and ID in its header."""
    no_sop = _patient()
    del no_sop.SOPInstanceUID
    bad_uid = _patient()
    bad_uid.SeriesInstanceUID = "1.2.03.abc"
    bad_values = _patient()
    _raw(bad_values, 0x00200013, "IS", "1A " + PATIENT_ID)  # InstanceNumber: not a number
    _raw(bad_values, 0x00100030, "DA", PATIENT_ID)  # PatientBirthDate: not a date
    _raw(bad_values, 0x00101010, "AS", NAME)  # PatientAge: not an age
    _raw(bad_values, 0x00100010, "PN", NAME + "\x01\x1b[31m")  # control characters in a name
    truncated = to_bytes(_patient(rows=32, columns=32))[:-700]
    header_cut = to_bytes(_patient())
    header_cut = header_cut[: header_cut.index(PATIENT_ID.encode()) + 4]
    bomb, _ = deflate_bomb(2 * INFLATE_LIMIT, patient_name=NAME, patient_id=PATIENT_ID)
    return [to_bytes(no_sop), to_bytes(bad_uid), to_bytes(bad_values), truncated, header_cut, bomb]


def _leaks(text: str) -> list[str]:
    return [secret for secret in SECRETS if secret in text]


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings.with_(ingest_scan_seconds=0, max_inflated_bytes=INFLATE_LIMIT)),
                    base_url="http://testserver",
                    raise_server_exceptions=False) as test_client:
        yield test_client


def test_no_log_record_holds_patient_data(client: TestClient, settings: Settings,
                                          caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    instances = invalid_instances()
    body, content_type = multipart_body(instances)
    response = client.post("/v1/studies", content=body, headers={"Content-Type": content_type})
    assert response.status_code in (202, 409)
    stored = _patient()
    assert client.post("/v1/studies", content=to_bytes(stored), headers={"Content-Type": DICOM}).status_code == 200
    url = f"/v1/studies/{stored.StudyInstanceUID}/series/{stored.SeriesInstanceUID}/instances/{stored.SOPInstanceUID}"
    assert client.get(url + "/bulkdata/00100010").status_code == 404
    assert client.get(url + "/bulkdata/00100020/0/00100010").status_code == 404
    incoming = settings.data_dir / "blobs" / "incoming"
    incoming.mkdir(parents=True, exist_ok=True)
    for number, data in enumerate(instances):
        (incoming / f"drop-{number}.dcm").write_bytes(data)
    services: Services = client.app.state.services  # type: ignore[attr-defined]
    outcomes = client.portal.call(scan_once, services.blob_created)
    assert len(outcomes) == len(instances)
    formatter = logging.Formatter("%(message)s")
    texts = [formatter.format(record) for record in caplog.records]
    assert any("not imported" in text for text in texts)  # the failures were logged...
    assert [text for text in texts if _leaks(text)] == []  # ...without patient data


def test_the_server_stderr_holds_no_patient_data(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path / "data", env={"DICOMWEB_INGEST_SCAN_SECONDS": "0.2",
                                                   "DICOMWEB_MAX_INFLATED_BYTES": str(INFLATE_LIMIT)})
    try:
        instances = invalid_instances()
        incoming = tmp_path / "data" / "blobs" / "incoming"
        incoming.mkdir(parents=True, exist_ok=True)
        for number, data in enumerate(instances):
            (incoming / f"drop-{number}.dcm").write_bytes(data)
        body, content_type = multipart_body(instances)
        with httpx.Client(timeout=60) as http:
            assert http.post(f"{server.root}/studies", content=body,
                             headers={"Content-Type": content_type}).status_code in (202, 409)
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and len(http.get(f"{server.root}/operations/ingest-failures")
                                                      .json()) < len(instances):
                time.sleep(0.2)
            assert len(http.get(f"{server.root}/operations/ingest-failures").json()) == len(instances)
    finally:
        server.stop()
    output = "".join(server.output)
    assert "not imported" in output  # the server did log the failures...
    assert _leaks(output) == []  # ...without patient data


def test_a_traceback_that_reaches_a_handler_is_summarised() -> None:
    """What uvicorn logs for an unexpected error ("Exception in ASGI application") passes
    through RedactExceptions on the server's handlers: the type and place stay, the
    message (which may quote a value) goes."""
    from dicomcore.redact import RedactExceptions

    try:
        int(PATIENT_ID)
    except ValueError:
        record = logging.getLogger("uvicorn.error").makeRecord(
            "uvicorn.error", logging.ERROR, __file__, 1, "Exception in ASGI application", (), sys.exc_info())
    assert RedactExceptions().filter(record)
    text = logging.Formatter("%(message)s").format(record)
    assert "Exception in ASGI application [ValueError at" in text
    assert _leaks(text) == []


def test_the_access_log_keeps_no_query_values() -> None:
    """A QIDO query string names what was searched for (``--access-log``)."""
    from dicomcore.redact import RedactQueryStrings

    record = logging.getLogger("uvicorn.access").makeRecord(
        "uvicorn.access", logging.INFO, __file__, 1, '%s - "%s %s HTTP/%s" %d',
        ("127.0.0.1:5000", "GET", f"/v1/studies?PatientName={NAME}&PatientID={PATIENT_ID}", "1.1", 200), None)
    assert RedactQueryStrings().filter(record)
    text = logging.Formatter("%(message)s").format(record)
    assert text == '127.0.0.1:5000 - "GET /v1/studies?(query not logged) HTTP/1.1" 200'

