"""Events: in-process subscribers, and Event Grid publishing with retries to a local endpoint."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from starlette.testclient import TestClient

from dicomweb.app import create_app
from dicomweb.settings import Settings
from tests.support.builders import DICOM, make_dataset, to_bytes


def test_in_process_subscriber_gets_every_change(settings: Settings) -> None:
    app = create_app(settings)
    received = []

    async def subscriber(entry) -> None:
        received.append((entry.sequence, entry.action.value, entry.sop_uid))

    app.state.services.events.subscribe(subscriber)
    ds = make_dataset()
    with TestClient(app) as client:
        client.post("/v1/studies", content=to_bytes(ds), headers={"Content-Type": DICOM})
        client.delete(f"/v1/studies/{ds.StudyInstanceUID}")
        deadline = time.monotonic() + 5
        while len(received) < 2 and time.monotonic() < deadline:
            client.get("/v1/changefeed/latest")  # lets the app's event loop run the publisher
            time.sleep(0.05)
    assert received == [(1, "create", ds.SOPInstanceUID), (2, "delete", ds.SOPInstanceUID)]


class FakeEventGrid(BaseHTTPRequestHandler):
    """Accepts Event Grid publish requests (CloudEvents batch); fails the first ones."""

    failures_left = 2
    received: list[dict] = []
    keys: list[str] = []

    def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
        body = self.rfile.read(int(self.headers["Content-Length"]))
        FakeEventGrid.keys.append(self.headers.get("aeg-sas-key", ""))
        if FakeEventGrid.failures_left > 0:
            FakeEventGrid.failures_left -= 1
            self.send_response(503)
            self.end_headers()
            return
        FakeEventGrid.received.extend(json.loads(body))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


def test_event_grid_events_arrive_despite_failures(tmp_path) -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeEventGrid)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    endpoint = f"http://127.0.0.1:{server.server_address[1]}/api/events"
    settings = Settings(data_dir=tmp_path, eventgrid_endpoint=endpoint, eventgrid_key="secret",
                        public_url="http://dicom.example/v1")
    app = create_app(settings)
    app.state.services.publisher.initial_backoff = 0.05
    datasets = [make_dataset() for _ in range(3)]
    try:
        with TestClient(app, base_url="http://dicom.example") as client:  # the public URL's host is allowed
            started = time.monotonic()
            for ds in datasets:
                response = client.post("/v1/studies", content=to_bytes(ds), headers={"Content-Type": DICOM})
                assert response.status_code == 200
            assert time.monotonic() - started < 5  # the failing sink never held a STOW back
            client.delete(f"/v1/studies/{datasets[0].StudyInstanceUID}")
            deadline = time.monotonic() + 10
            while len(FakeEventGrid.received) < 4 and time.monotonic() < deadline:
                client.get("/v1/changefeed/latest")
                time.sleep(0.05)
    finally:
        server.shutdown()
    events = FakeEventGrid.received
    assert [e["type"] for e in events] == ["DicomImageCreated"] * 3 + ["DicomImageDeleted"]
    assert [e["data"]["sequenceNumber"] for e in events] == [1, 2, 3, 4]
    assert [e["data"]["imageSopInstanceUid"] for e in events[:3]] == [ds.SOPInstanceUID for ds in datasets]
    assert events[0]["source"] == "http://dicom.example/v1"
    assert events[0]["specversion"] == "1.0"
    assert set(FakeEventGrid.keys) == {"secret"}
