"""The real server (``python -m dicomweb serve``) with authentication: dicomweb-client with a
token, every returned URL followed, the startup rules, no Server banner, owner-only files."""

from __future__ import annotations

import os
import ssl
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from dicomweb_client.api import DICOMwebClient

from tests.security.conftest import bearer
from tests.support.builders import make_dataset
from tests.support.oidc import AUDIENCE, OidcProvider
from tests.support.servers import ServerProcess, free_port

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def auth_server(tmp_path: Path, oidc_provider: OidcProvider) -> Iterator[ServerProcess]:
    # The flags, not the environment: they must reach uvicorn's worker the same way.
    process = ServerProcess(tmp_path / "data", args=["--auth-authority", oidc_provider.issuer,
                                                     "--auth-audience", AUDIENCE])
    yield process
    process.stop()


def test_dicomweb_client_with_a_token_follows_every_returned_url(
        auth_server: ServerProcess, oidc_provider: OidcProvider) -> None:
    ds = make_dataset(rows=64, columns=64)  # pixel data above the bulk data threshold
    client = DICOMwebClient(auth_server.root, headers=bearer(oidc_provider.token("owner")))
    client.store_instances([ds])
    (found,) = client.search_for_instances(study_instance_uid=ds.StudyInstanceUID)
    retrieve_url = found["00081190"]["Value"][0]
    assert retrieve_url.startswith(auth_server.root)
    followed = httpx.get(retrieve_url, headers={**bearer(oidc_provider.token("reader")),
                                                "Accept": "multipart/related; type=\"application/dicom\""})
    assert followed.status_code == 200 and ds.SOPInstanceUID.encode() in followed.content
    metadata = client.retrieve_instance_metadata(ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID)
    bulkdata_uri = metadata["7FE00010"]["BulkDataURI"]
    assert bulkdata_uri.startswith(f"{auth_server.root}/studies/")  # with the port, though Host had none
    (pixels,) = client.retrieve_bulkdata(bulkdata_uri)
    assert pixels == ds.PixelData
    frames = client.retrieve_instance_frames(ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID, [1])
    assert frames == [ds.PixelData]

    anonymous = DICOMwebClient(auth_server.root)
    with pytest.raises(Exception, match="401"):
        anonymous.search_for_studies()
    reader = DICOMwebClient(auth_server.root, headers=bearer(oidc_provider.token("reader")))
    with pytest.raises(Exception, match="403"):
        reader.delete_study(ds.StudyInstanceUID)
    client.delete_study(ds.StudyInstanceUID)
    assert client.search_for_studies() == []


def test_a_host_header_without_port_gets_urls_that_work(server: ServerProcess) -> None:
    """What dicomweb-client's session sends: ``Host: 127.0.0.1``, no port (issue 12, item 4)."""
    ds = make_dataset(rows=64, columns=64)
    DICOMwebClient(server.root).store_instances([ds])
    metadata = httpx.get(f"{server.root}/studies/{ds.StudyInstanceUID}/metadata", headers={"Host": "127.0.0.1"})
    uri = metadata.json()[0]["7FE00010"]["BulkDataURI"]
    assert uri.startswith(f"http://127.0.0.1:{server.port}/v1/")
    assert httpx.get(uri, headers={"Accept": "multipart/related; type=\"application/octet-stream\""}
                     ).status_code == 200


def test_no_server_banner_and_owner_only_files(server: ServerProcess, tmp_path: Path) -> None:
    DICOMwebClient(server.root).store_instances([make_dataset()])
    response = httpx.get(f"{server.root}/studies")
    assert "server" not in response.headers and response.headers["x-content-type-options"] == "nosniff"
    data = tmp_path / "server-data"
    assert data.stat().st_mode & 0o777 == 0o700
    files = [path for path in data.rglob("*") if path.is_file()]
    assert any(path.name == "index.sqlite" for path in files) and any(path.name == "audit.log" for path in files)
    assert [path for path in files if path.stat().st_mode & 0o077] == []


def serve(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DICOMWEB_AUTH")}
    return subprocess.run([sys.executable, "-m", "dicomweb", "serve", *args], capture_output=True, text=True,
                          env=env, cwd=ROOT, timeout=60)


def test_a_non_loopback_address_without_authority_is_refused(tmp_path: Path) -> None:
    result = serve("--host", "0.0.0.0", "--port", "1", "--data", str(tmp_path))
    assert result.returncode == 2
    assert "--allow-anonymous" in result.stderr and "--auth-authority" in result.stderr


def _self_signed(folder: Path) -> tuple[Path, Path]:
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now)
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


def test_tls_flags_serve_https(tmp_path: Path) -> None:
    cert, key = _self_signed(tmp_path)
    port = free_port()
    process = subprocess.Popen([sys.executable, "-m", "dicomweb", "serve", "--port", str(port), "--data",
                                str(tmp_path / "data"), "--ssl-certfile", str(cert), "--ssl-keyfile", str(key)],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=ROOT)
    try:
        assert process.stdout is not None
        root = ""
        for line in process.stdout:
            if "service root" in line:
                root = line.split()[3]
                break
        assert root == f"https://127.0.0.1:{port}/v1"
        response = httpx.get(f"{root}/studies", verify=ssl.create_default_context(cafile=str(cert)))
        assert response.status_code in (200, 204)
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_the_loopback_server_says_it_is_open(server: ServerProcess) -> None:
    # The line is printed before the service root (ServerProcess waits for the latter).
    assert httpx.get(f"{server.root}/studies").status_code in (200, 204)
    from dicomweb.cli import _access_decision

    start, line = _access_decision("127.0.0.1", "", allow_anonymous=False)
    assert start and "authentication is off" in line
