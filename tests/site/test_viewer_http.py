"""/viewer/ over HTTP: our app-config.js, the bundle's files, index.html for OHIF's own
routes, nothing outside the bundle, and a clear answer when the viewer is not installed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from dicomweb.app import create_app
from dicomweb.settings import Settings


@pytest.fixture
def bundle(tmp_path: Path) -> Path:
    """A stand-in for the installed OHIF dist: what the routes serve does not depend on its content."""
    folder = tmp_path / "ohif"
    (folder / "assets").mkdir(parents=True)
    (folder / "index.html").write_text('<html><script src="/viewer/app-config.js"></script></html>')
    (folder / "app.bundle.js").write_text("console.log('ohif')")
    (folder / "codec.wasm").write_bytes(b"\0asm")
    (folder / "assets" / "logo.svg").write_text("<svg/>")
    (tmp_path / "secret.txt").write_text("outside the bundle")
    return folder


def _client(tmp_path: Path, viewer_dir: Path) -> TestClient:
    return TestClient(create_app(Settings(data_dir=tmp_path / "data", viewer_dir=viewer_dir,
                                          allowed_hosts=("testserver", "pacs.example"))))


def test_viewer_serves_its_files_and_its_routes(tmp_path: Path, bundle: Path) -> None:
    with _client(tmp_path, bundle) as client:
        assert client.get("/viewer", follow_redirects=False).headers["location"] == "/viewer/"
        start = client.get("/viewer/")
        assert start.status_code == 200 and "app-config.js" in start.text
        script = client.get("/viewer/app.bundle.js")
        assert script.text == "console.log('ohif')" and script.headers["content-type"].startswith("text/javascript")
        assert client.get("/viewer/codec.wasm").headers["content-type"] == "application/wasm"
        assert client.get("/viewer/assets/logo.svg").text == "<svg/>"
        # OHIF's own routes are the single-page app's index.
        assert client.get("/viewer/viewer?StudyInstanceUIDs=1.2.3").text == start.text
        assert client.get("/viewer/microscopy?StudyInstanceUIDs=1.2.3").text == start.text
        # Nothing outside the bundle, however asked for.
        for path in ("/viewer/../secret.txt", "/viewer/%2e%2e/secret.txt", "/viewer/..%2fsecret.txt"):
            assert "outside the bundle" not in client.get(path).text, path
        # And the start page links the viewer.
        assert 'href="/viewer/"' in client.get("/").text


def test_app_config_points_the_viewer_at_this_server(tmp_path: Path, bundle: Path) -> None:
    with _client(tmp_path, bundle) as client:
        response = client.get("/viewer/app-config.js", headers={"Host": "pacs.example:8443"})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/javascript")
    assert response.headers["cache-control"] == "no-store"
    prefix = "window.config = "
    assert response.text.startswith(prefix)
    config = json.loads(response.text.removeprefix(prefix).rstrip().rstrip(";"))
    assert config["routerBasename"] == "/viewer"
    (source,) = config["dataSources"]
    roots = {source["configuration"][key] for key in ("qidoRoot", "wadoRoot", "wadoUriRoot")}
    assert roots == {"http://pacs.example:8443/v1"}  # same origin as the page: no CORS needed


def test_without_the_viewer_the_server_runs_and_says_how_to_get_it(tmp_path: Path) -> None:
    with _client(tmp_path, tmp_path / "not-installed") as client:
        page = client.get("/")
        assert page.status_code == 200
        assert 'id="viewer-missing"' in page.text and "bash scripts/setup.sh" in page.text
        assert 'href="/viewer/"' not in page.text
        viewer = client.get("/viewer/")
        assert viewer.status_code == 404
        assert "node and npm" in viewer.text and "bash scripts/setup.sh" in viewer.text
        assert client.get("/health").status_code == 200
