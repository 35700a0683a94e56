"""Malformed import requests: refused with 400 and a message naming the problem, before any
operation is created (checked on the embedded store: the checks come before any adapter)."""

from __future__ import annotations

import pytest
from starlette.testclient import TestClient


@pytest.mark.parametrize("body, problem", [
    ({}, "source"),
    ({"source": {}}, "prefix"),
    ({"source": {"prefix": ""}}, "prefix"),
    ({"source": {"prefix": "../etc/"}}, ".."),
    ({"source": {"prefix": "a/../../b"}}, ".."),
    ({"source": {"prefix": "/etc/"}}, "absolute"),
    ({"source": {"prefix": "x/"}, "deleteSource": "yes"}, "deleteSource"),
    ([1, 2], "object"),
])
def test_bad_import_requests_are_refused(client: TestClient, body: object, problem: str) -> None:
    response = client.post("/v1/import", json=body)
    assert response.status_code == 400
    assert problem in response.json()["message"]
    assert client.get("/v1/operations").json() == []


def test_a_symlink_leaving_the_import_area_is_refused(client: TestClient, tmp_path: pytest.TempPathFactory) -> None:
    settings = client.app.state.services.settings  # type: ignore[attr-defined]
    settings.import_path.mkdir(parents=True, exist_ok=True)
    (settings.import_path / "escape").symlink_to("/etc", target_is_directory=True)
    response = client.post("/v1/import", json={"source": {"prefix": "escape/"}})
    assert response.status_code == 400 and "outside the import area" in response.json()["message"]
