"""Import requests on the embedded store: malformed ones refused with 400 and a message naming
the problem before any operation is created (the checks come before any adapter), symbolic
links leading out of the import folder, and cancelling a running import."""

from __future__ import annotations

import json
from pathlib import Path

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


def test_cancel_stops_a_running_import(client: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(import_files, "PAGE_SIZE", 2)
    settings = client.app.state.services.settings  # type: ignore[attr-defined]
    for i, blob in enumerate(many_instances("1.2.826.0.1.3680043.8.498.7006", 60)):
        path = settings.import_path / "slow" / f"{i:03d}.dcm"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(blob)
    started = client.post("/v1/import", json={"source": {"prefix": "slow/"}}).json()
    cancel = client.post(f"{started['href']}/cancel")
    assert cancel.status_code == 202 and cancel.headers["Location"] == started["href"]
    operation = wait_for_operation(client.get, started["href"])
    assert operation["status"] == "canceled"
    assert operation["results"]["imported"] < 60
    assert client.post(f"{started['href']}/cancel").status_code == 409
