"""The audit trail: one JSON line per API request, with the caller, the UIDs touched and the
outcome; never a patient's name or ID."""

from __future__ import annotations

import json
import logging.handlers
import threading
from pathlib import Path
from typing import Any

import httpx
from starlette.testclient import TestClient

from dicomweb.app import create_app
from dicomweb.settings import Settings
from tests.security.conftest import bearer
from tests.support.builders import make_dataset, multipart_body, to_bytes
from tests.support.oidc import OidcProvider
from tests.support.servers import ServerProcess

PATIENT_NAME = "SECRET^PATIENT"
PATIENT_ID = "PID-4711-SECRET"


def lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_one_line_per_request_with_caller_uids_and_no_patient_data(
        auth_settings: Settings, oidc_provider: OidcProvider) -> None:
    ds = make_dataset(patient_name=PATIENT_NAME, patient_id=PATIENT_ID)
    study, series, sop = ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID
    body, content_type = multipart_body([to_bytes(ds)])
    owner, reader = bearer(oidc_provider.token("owner")), bearer(oidc_provider.token("reader"))
    with TestClient(create_app(auth_settings), base_url="http://testserver") as client:
        stored = client.post("/v1/studies", content=body, headers={"Content-Type": content_type, **owner,
                                                                   "X-Request-Id": "req-42"})
        assert stored.status_code == 200 and stored.headers["x-request-id"] == "req-42"
        trace = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
        assert client.get(f"/v1/studies/{study}/metadata", headers={**reader, "traceparent": trace}).status_code == 200
        assert client.get(f"/v1/studies?PatientName={PATIENT_NAME}", headers=reader).status_code == 200
        assert client.delete(f"/v1/studies/{study}", headers=reader).status_code == 403
        assert client.delete(f"/v1/studies/{study}").status_code == 401
        assert client.delete(f"/v1/studies/{study}/series/{series}/instances/{sop}", headers=owner).status_code == 204
        assert client.get("/elsewhere").status_code == 404  # outside the API: not audited
    log_file = auth_settings.data_dir / "audit.log"
    text = log_file.read_text()
    assert PATIENT_NAME.split("^")[0] not in text and PATIENT_ID not in text
    assert log_file.stat().st_mode & 0o777 == 0o600
    stow_line, metadata, search, forbidden, anonymous, deleted = lines(log_file)

    assert stow_line["caller"] == "owner" and stow_line["application"] == "owner"
    assert stow_line["permission"] == "write" and stow_line["method"] == "POST" and stow_line["route"] == "/v1/studies"
    assert (stow_line["studies"], stow_line["series"], stow_line["instances"]) == ([study], [series], [sop])
    assert stow_line["status"] == 200 and stow_line["correlationId"] == "req-42"
    assert stow_line["clientIp"] == "testclient" and stow_line["durationMs"] >= 0
    assert stow_line["time"].endswith("+00:00")

    assert metadata["route"] == "/v1/studies/{study}/metadata" and metadata["studies"] == [study]
    assert metadata["caller"] == "reader" and metadata["permission"] == "read"
    assert metadata["correlationId"] == "4bf92f3577b34da6a3ce929d0e0e4736"
    assert search["route"] == "/v1/studies" and search["status"] == 200
    assert (forbidden["status"], forbidden["permission"], forbidden["caller"]) == (403, "delete", "reader")
    assert (anonymous["status"], anonymous["caller"]) == (401, "")
    assert deleted["status"] == 204 and deleted["instances"] == [sop] and deleted["caller"] == "owner"
    assert deleted["route"] == "/v1/studies/{study}/series/{series}/instances/{instance}"


def test_audit_log_path_setting_and_the_open_servers_anonymous_caller(tmp_path: Path) -> None:
    target = tmp_path / "elsewhere" / "audit.jsonl"
    settings = Settings(data_dir=tmp_path / "data", audit_log=str(target), allowed_hosts=("testserver",))
    with TestClient(create_app(settings), base_url="http://testserver") as client:
        client.get("/v1/studies")
    (line,) = lines(target)
    assert line["caller"] == "anonymous" and line["permission"] == "read"
    assert not (tmp_path / "data" / "audit.log").exists()


def test_the_audit_log_rotates_and_every_file_is_owner_only(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr("dicomweb.http.audit.ROTATE_BYTES", 2000)
    settings = Settings(data_dir=tmp_path / "data", allowed_hosts=("testserver",))
    with TestClient(create_app(settings), base_url="http://testserver") as client:
        for _ in range(30):
            client.get("/v1/studies")
    files = sorted((tmp_path / "data").glob("audit.log*"))
    assert [f.name for f in files][:2] == ["audit.log", "audit.log.1"]
    assert all(f.stat().st_mode & 0o777 == 0o600 for f in files)
    assert sum(len(lines(f)) for f in files) == 30  # nothing lost in the rotations (10 files kept)


def test_every_line_reaches_the_file_written_off_the_event_loop_by_a_clean_shutdown(tmp_path: Path) -> None:
    """The request only queues its line; a writer thread appends it. Whatever was answered
    before a clean shutdown (SIGTERM) is in the file afterwards, one line per request."""
    server = ServerProcess(tmp_path / "data")
    try:
        with httpx.Client(timeout=30) as http:
            statuses = [http.get(f"{server.root}/studies", headers={"X-Request-Id": f"r{i}"}).status_code
                        for i in range(200)]
    finally:
        server.stop()  # SIGTERM: uvicorn's graceful shutdown, the app's lifespan closes the sink
    assert statuses == [200] * 200  # (uvicorn ends by re-raising SIGTERM: the exit code says nothing)
    written = lines(tmp_path / "data" / "audit.log")
    assert [line["correlationId"] for line in written] == [f"r{i}" for i in range(200)]


def test_the_audit_writer_thread_starts_with_the_first_line_and_ends_with_the_app(tmp_path: Path) -> None:
    def writers() -> list[threading.Thread]:
        """Threads running a QueueListener (threading keeps a thread's target as ``_target``)."""
        return [t for t in threading.enumerate()
                if isinstance(getattr(getattr(t, "_target", None), "__self__", None), logging.handlers.QueueListener)]

    before = len(writers())
    settings = Settings(data_dir=tmp_path / "data", allowed_hosts=("testserver",))
    with TestClient(create_app(settings), base_url="http://testserver") as client:
        assert len(writers()) == before  # no request yet: no thread
        client.get("/v1/studies")
        assert len(writers()) == before + 1
    assert len(writers()) == before  # the lifespan's end drained the queue and stopped the thread
    (line,) = lines(tmp_path / "data" / "audit.log")
    assert line["route"] == "/v1/studies"
