"""The first hour over HTTP, on both backends: the landing page, the health probes, the
capabilities summary and the OpenAPI description (kept true against the route table)."""

from __future__ import annotations

import re

import pytest
from starlette.routing import BaseRoute, Mount, Route
from starlette.testclient import TestClient

from dicomweb.app import create_app
from dicomweb.settings import Settings
from tests.conftest import EMBEDDED
from tests.support.builders import make_dataset, to_bytes
from tests.support.servers import free_port

pytestmark = pytest.mark.both_backends

DICOM = {"Content-Type": "application/dicom", "Accept": "application/dicom+json"}


def _store_two_series(client: TestClient) -> None:
    study = make_dataset()
    for series_uid, modality in (("1.2.826.0.1.3680043.8.498.1", "CT"), ("1.2.826.0.1.3680043.8.498.2", "MR")):
        for number in (1, 2):
            ds = make_dataset(study=study.StudyInstanceUID, series=series_uid, modality=modality,
                              instance_number=number)
            response = client.post("/v1/studies", content=to_bytes(ds), headers=DICOM)
            assert response.status_code == 200, response.text


def test_landing_page_shows_version_mode_counts_root_and_links(client: TestClient, backend: str) -> None:
    _store_two_series(client)
    page = client.get("/")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    text = page.text
    assert '<span id="version">0.1.0</span>' in text
    assert f'<span id="mode">{"embedded" if backend == EMBEDDED else "azure"}</span>' in text
    assert '<b id="studies">1</b>' in text and '<b id="series">2</b>' in text and '<b id="instances">4</b>' in text
    assert '<code id="service-root">http://testserver/v1</code>' in text
    for link in ('href="/docs"', 'href="http://testserver/v1/changefeed"'):
        assert link in text
    assert "curl 'http://testserver/v1/studies?PatientName=DEMO*'" in text
    assert 'DICOMwebClient("http://testserver/v1")' in text
    assert "127.0.0.1" in text and "docs/security.md" in text


def test_landing_page_holds_no_patient_data(client: TestClient) -> None:
    ds = make_dataset()
    ds.PatientName, ds.PatientID = "Landing^Secret", "SECRET-ID-42"
    assert client.post("/v1/studies", content=to_bytes(ds), headers=DICOM).status_code == 200
    text = client.get("/").text
    assert "Secret" not in text and "SECRET-ID-42" not in text


def test_liveness_and_readiness_answer(client: TestClient) -> None:
    live = client.get("/health")
    assert (live.status_code, live.json()) == (200, {"status": "ok"})
    ready = client.get("/health/ready")
    assert ready.status_code == 200, ready.text
    assert ready.json() == {"status": "ready", "checks": {"store": "ok", "index": "ok"}}
    assert ready.headers["cache-control"] == "no-store"
    # The same under the service root, which is all the Functions host passes to the app.
    assert client.get("/v1/health/ready").json() == ready.json()


def test_readiness_is_503_when_the_index_is_unreachable(settings: Settings, backend: str) -> None:
    broken = settings
    if backend != EMBEDDED:
        broken = settings.with_(cosmos_endpoint=f"https://127.0.0.1:{free_port()}")  # nothing listens there
    # No lifespan (as under the Functions host, which may never send it): the background work
    # would otherwise keep the app from starting, and readiness is about a running app.
    client = TestClient(create_app(broken))
    if backend == EMBEDDED:
        # The database file goes away under the running app (a lost volume); a folder takes its
        # place, which SQLite cannot open.
        database = settings.data_dir / "index.sqlite"
        database.rename(database.with_suffix(".lost"))
        database.mkdir()
    try:
        assert client.get("/health").status_code == 200  # alive, just not ready
        response = client.get("/health/ready")
        assert response.status_code == 503, response.text
        body = response.json()
        assert body["status"] == "unavailable"
        assert body["checks"]["store"] == "ok"
        assert body["checks"]["index"] != "ok"
        assert broken.cosmos_key not in response.text or not broken.cosmos_key  # no secrets in the answer
        # The landing page still helps: it says what it cannot count.
        page = client.get("/")
        assert page.status_code == 200 and '<b id="studies">?</b>' in page.text
    finally:
        client.close()


def test_capabilities_summary_lists_transactions_from_the_routes(client: TestClient, backend: str) -> None:
    response = client.get("/v1")
    assert response.status_code == 200
    summary = response.json()
    assert summary["version"] == "0.1.0"
    assert summary["serviceRoot"] == "http://testserver/v1"
    assert summary["store"]["mode"] == ("embedded" if backend == EMBEDDED else "azure")
    transactions = summary["transactions"]
    assert {"stow", "qido", "wado", "delete", "changefeed"} <= set(transactions)
    assert "POST /v1/studies" in transactions["stow"]["resources"]
    assert "GET /v1/studies" in transactions["qido"]["resources"]
    assert "GET /v1/studies/{study}/series/{series}/instances/{instance}/frames/{frames}" in (
        transactions["wado"]["resources"])
    assert "DELETE /v1/studies/{study}" in transactions["delete"]["resources"]
    assert summary["openapi"] == "http://testserver/v1/openapi.json"


def _route_table(routes: list[BaseRoute], prefix: str = "") -> set[tuple[str, str]]:
    """(path, method) of every route, mounts included, written as OpenAPI writes paths."""
    found: set[tuple[str, str]] = set()
    for route in routes:
        if isinstance(route, Mount):
            found |= _route_table(list(route.routes), prefix + route.path)
        elif isinstance(route, Route):
            path = re.sub(r"{(\w+):\w+}", r"{\1}", prefix + route.path)
            found |= {(path, method.lower()) for method in route.methods or {"GET"} if method != "HEAD"}
    return found


SAMPLE_PARAMETERS = {"study": "1.2.3", "series": "1.2.3.4", "instance": "1.2.3.4.5", "frames": "1",
                     "path": "x", "name": "swagger-ui.css"}


def test_openapi_lists_every_route_and_every_path_in_it_is_served(client: TestClient) -> None:
    response = client.get("/v1/openapi.json")
    assert response.status_code == 200
    document = response.json()
    assert document["openapi"].startswith("3.")
    described = {(path, method) for path, operations in document["paths"].items() for method in operations}
    assert described == _route_table(list(client.app.routes))  # type: ignore[attr-defined]
    for path, method in sorted(described):
        url = re.sub(r"{(\w+)}", lambda m: SAMPLE_PARAMETERS.get(m.group(1), "unknown-1"), path)
        answer = client.request(method.upper(), url, follow_redirects=False)
        # The router's own miss is a bare "Not Found" (405: "Method Not Allowed"); a served route
        # answers, or names what it did not find.
        assert answer.status_code != 405, (method, path)
        if answer.status_code == 404 and answer.headers["content-type"] == "application/json":
            assert answer.json()["message"] != "Not Found", (method, path)
        assert answer.status_code < 500, (method, path, answer.status_code)
    operations = [operation for operations in document["paths"].values() for operation in operations.values()]
    assert all(operation["summary"] for operation in operations)
    # Each method is described by its own feature's endpoint, even where one path serves several.
    assert {operation["tags"][0] for operation in operations} >= {"stow", "qido", "wado", "delete", "site", "health"}
    assert not {operation["tags"][0] for operation in operations} & {"other", "http"}
    assert document["paths"]["/v1/studies"]["post"]["tags"] == ["stow"]
    assert document["paths"]["/v1/studies"]["get"]["tags"] == ["qido"]
    assert len({operation["operationId"] for operation in operations}) == len(operations)


def test_docs_page_renders_the_openapi_description_with_bundled_assets(client: TestClient) -> None:
    page = client.get("/docs")
    assert page.status_code == 200
    assert "/v1/openapi.json" in page.text
    assets = re.findall(r'(?:src|href)="(/docs/assets/[^"]+)"', page.text)
    assert len(assets) >= 2
    for asset in assets:
        assert client.get(asset).status_code == 200, asset
    assert "http" not in "".join(re.findall(r'(?:src|href)="([^"]+)"', page.text))  # nothing from elsewhere
    assert client.get("/docs/assets/index.html").status_code == 404
