"""Safe exposure: allowed hosts, returned URLs (public URL, trusted proxies, Host without a
port), CORS and the security headers; in process (the real server: test_server.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
from starlette.testclient import TestClient

from dicomweb.app import create_app
from dicomweb.settings import Settings
from tests.security.conftest import bearer
from tests.support.builders import make_dataset, multipart_body, to_bytes
from tests.support.oidc import AUDIENCE, OidcProvider

RETRIEVE_URL = "00081190"


def stow(client: TestClient, **headers: str) -> str:
    """Store one instance; its RetrieveURL in the STOW answer."""
    body, content_type = multipart_body([to_bytes(make_dataset())])
    response = client.post("/v1/studies", content=body, headers={"Content-Type": content_type, **headers})
    assert response.status_code == 200, response.text
    (stored,) = response.json()["00081199"]["Value"]
    return str(stored[RETRIEVE_URL]["Value"][0])


def test_only_loopback_names_are_served_by_default(tmp_path: Path) -> None:
    with TestClient(create_app(Settings(data_dir=tmp_path)), base_url="http://127.0.0.1:8080") as client:
        assert client.get("/v1/studies").status_code in (200, 204)
        assert client.get("/v1/studies", headers={"Host": "localhost:8080"}).status_code in (200, 204)
        rebound = client.get("/v1/studies", headers={"Host": "attacker.example"})
        assert rebound.status_code == 400  # a DNS name rebound to 127.0.0.1 is refused


def test_configured_allowed_hosts_and_the_public_urls_host(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, public_url="https://pacs.example.org/dicomweb/v1")
    with TestClient(create_app(settings), base_url="http://pacs.example.org") as client:
        assert client.get("/v1/studies").status_code in (200, 204)
        assert client.get("/v1/studies", headers={"Host": "other.example"}).status_code == 400
    settings = Settings(data_dir=tmp_path, allowed_hosts=("dicom.internal",))
    with TestClient(create_app(settings), base_url="http://dicom.internal") as client:
        assert client.get("/v1/studies").status_code in (200, 204)
        assert client.get("/v1/studies", headers={"Host": "127.0.0.1"}).status_code == 400


def test_a_host_without_port_gets_the_port_the_server_listens_on(tmp_path: Path) -> None:
    with TestClient(create_app(Settings(data_dir=tmp_path)), base_url="http://127.0.0.1:8080") as client:
        url = stow(client, Host="127.0.0.1")
        assert url.startswith("http://127.0.0.1:8080/v1/studies/")


def test_the_public_url_makes_every_returned_url(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, public_url="https://pacs.example.org/dicomweb/v1")
    with TestClient(create_app(settings), base_url="http://pacs.example.org") as client:
        url = stow(client)
        assert url.startswith("https://pacs.example.org/dicomweb/v1/studies/")
        found = client.get("/v1/instances").json()[0][RETRIEVE_URL]["Value"][0]
        assert found.startswith("https://pacs.example.org/dicomweb/v1/studies/")


FORWARDED = {"X-Forwarded-Proto": "https", "X-Forwarded-Host": "pacs.example.org",
             "X-Forwarded-Prefix": "/dicom"}


def test_forwarded_headers_from_a_trusted_proxy_are_honoured(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, trusted_proxies=("10.0.0.0/8",))
    app = create_app(settings)
    with TestClient(app, base_url="http://127.0.0.1:8080", client=("10.1.2.3", 40000)) as client:
        assert stow(client, **FORWARDED).startswith("https://pacs.example.org/dicom/v1/studies/")
        bad = client.get("/v1/instances", headers={"X-Forwarded-Host": "evil.example/@x"})
        assert bad.status_code == 400 and "X-Forwarded-Host" in bad.json()["message"]


def test_forwarded_headers_from_anyone_else_are_ignored(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, trusted_proxies=("10.0.0.0/8",))
    with TestClient(create_app(settings), base_url="http://127.0.0.1:8080", client=("192.0.2.7", 40000)) as client:
        assert stow(client, **FORWARDED).startswith("http://127.0.0.1:8080/v1/studies/")


def test_a_host_header_that_is_not_a_host_is_never_echoed(tmp_path: Path) -> None:
    with TestClient(create_app(Settings(data_dir=tmp_path)), base_url="http://127.0.0.1:8080") as client:
        body, content_type = multipart_body([to_bytes(make_dataset())])
        response = client.post("/v1/studies", content=body,
                               headers={"Content-Type": content_type, "Host": "127.0.0.1:80@evil.example"})
        assert response.status_code == 400 and "host" in response.text.lower() and "evil" not in response.text


def test_cors_any_origin_is_refused_while_authentication_is_off(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="refused while authentication is off"):
        create_app(Settings(data_dir=tmp_path, cors_origins=("*",)))


def test_cors_with_authentication_allows_authorization_without_credentials(
        tmp_path: Path, oidc_provider: OidcProvider) -> None:
    settings = Settings(data_dir=tmp_path, cors_origins=("http://viewer.example",), allowed_hosts=("testserver",),
                        auth_authority=oidc_provider.issuer, auth_audiences=(AUDIENCE,))
    with TestClient(create_app(settings)) as client:
        preflight = client.options("/v1/studies", headers={
            "Origin": "http://viewer.example", "Access-Control-Request-Method": "GET",
            "Access-Control-Request-Headers": "Authorization"})
        assert preflight.status_code == 200  # no token needed for a preflight
        assert "authorization" in preflight.headers["access-control-allow-headers"].lower()
        assert "access-control-allow-credentials" not in preflight.headers
        response = client.get("/v1/studies", headers={"Origin": "http://viewer.example",
                                                        **bearer(oidc_provider.token("reader"))})
        assert response.headers["access-control-allow-origin"] == "http://viewer.example"
        assert "access-control-allow-credentials" not in response.headers


def test_security_headers_on_every_api_response(client: TestClient) -> None:
    ds = make_dataset()
    stow(client)
    for url in ["/v1/studies", f"/v1/studies/{ds.StudyInstanceUID}/metadata", "/v1/studies/9.9.9/metadata",
                "/v1/changefeed"]:
        response = client.get(url)
        assert response.headers["x-content-type-options"] == "nosniff", url
        assert response.headers["cache-control"] == "no-store", url
        assert "server" not in response.headers
