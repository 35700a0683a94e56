"""Import requests on the embedded store: malformed ones refused with 400 and a message naming
the problem before any operation is created (the checks come before any adapter), symbolic
links leading out of the import folder, and cancelling a running import."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from dicomweb.usecases import import_files
from tests.support.builders import make_dataset, many_instances, to_bytes
from tests.support.import_area import wait_for_operation


@pytest.mark.parametrize("body, problem", [
    ({}, "source"),
    ({"source": {}}, "prefix"),
    ({"source": {"prefix": ""}}, "prefix"),
    ({"source": {"prefix": "../etc/"}}, ".."),
    ({"source": {"prefix": "a/../../b"}}, ".."),
    ({"source": {"prefix": "/etc/"}}, "absolute"),
    ({"source": {"prefix": "x/"}, "deleteSource": "yes"}, "deleteSource"),
    ([1, 2], "object"),
    ({"source": {"prefix": "x/", "container": "Bad_Name"}}, "container name"),
    ({"source": {"prefix": "x/", "container": "archive"}}, "embedded store imports from its import folder"),
])
def test_bad_import_requests_are_refused(client: TestClient, body: object, problem: str) -> None:
    response = client.post("/v1/import", json=body)
    assert response.status_code == 400
    assert problem in response.json()["message"]
    assert client.get("/v1/operations").json() == []


def test_a_symlink_leaving_the_import_area_is_refused(client: TestClient) -> None:
    settings = client.app.state.services.settings  # type: ignore[attr-defined]
    settings.import_path.mkdir(parents=True, exist_ok=True)
    (settings.import_path / "escape").symlink_to("/etc", target_is_directory=True)
    response = client.post("/v1/import", json={"source": {"prefix": "escape/"}})
    assert response.status_code == 400 and "outside the import area" in response.json()["message"]


def test_a_file_linking_outside_the_import_area_is_counted_failed(client: TestClient, tmp_path: Path) -> None:
    settings = client.app.state.services.settings  # type: ignore[attr-defined]
    outside = tmp_path / "outside.dcm"
    outside.write_bytes(to_bytes(make_dataset()))
    (settings.import_path / "links").mkdir(parents=True)
    (settings.import_path / "links" / "escape.dcm").symlink_to(outside)
    started = client.post("/v1/import", json={"source": {"prefix": "links/"}}).json()
    operation = wait_for_operation(client.get, started["href"])
    assert operation["results"]["failed"] == 1 and operation["results"]["imported"] == 0
    (error,) = [json.loads(line) for line in client.get(operation["results"]["errorHref"]).text.splitlines()]
    assert error["file"] == "links/escape.dcm" and "outside the import area" in error["error"]


@pytest.fixture
def count_gate(monkeypatch: pytest.MonkeyPatch) -> Iterator[threading.Event]:
    """Holds every import at its first activity (counting the files) until the test sets it, so
    the test acts on an import that is surely running and has imported nothing yet."""
    gate = threading.Event()
    run_activity = import_files.ImportFiles.run_activity

    async def gated(self: import_files.ImportFiles, activity: str, input: dict[str, Any]) -> Any:
        if activity == "count":
            await asyncio.to_thread(gate.wait, 30)
        return await run_activity(self, activity, input)

    monkeypatch.setattr(import_files.ImportFiles, "run_activity", gated)
    yield gate
    gate.set()


def _write_files(client: TestClient, folder: str, count: int) -> None:
    settings = client.app.state.services.settings  # type: ignore[attr-defined]
    for i, blob in enumerate(many_instances("1.2.826.0.1.3680043.8.498.7006", count)):
        path = settings.import_path / folder / f"{i:03d}.dcm"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(blob)


def test_an_import_shows_zero_counts_before_its_first_page(client: TestClient, count_gate: threading.Event) -> None:
    _write_files(client, "early", 3)
    started = client.post("/v1/import", json={"source": {"prefix": "early/"}}).json()
    early = client.get(started["href"])
    assert early.status_code == 202
    counts = {key: early.json()["results"][key] for key in ("imported", "skipped", "failed")}
    assert counts == {"imported": 0, "skipped": 0, "failed": 0}
    count_gate.set()
    assert wait_for_operation(client.get, started["href"])["results"]["imported"] == 3


def test_cancel_stops_a_running_import(client: TestClient, monkeypatch: pytest.MonkeyPatch,
                                       count_gate: threading.Event) -> None:
    monkeypatch.setattr(import_files, "PAGE_SIZE", 2)
    _write_files(client, "slow", 60)
    started = client.post("/v1/import", json={"source": {"prefix": "slow/"}}).json()
    cancel = client.post(f"{started['href']}/cancel")
    assert cancel.status_code == 202 and cancel.headers["Location"] == started["href"]
    count_gate.set()
    operation = wait_for_operation(client.get, started["href"])
    assert operation["status"] == "canceled"
    assert operation["results"]["imported"] == 2  # the page under way when the cancel was seen
    assert client.post(f"{started['href']}/cancel").status_code == 409
