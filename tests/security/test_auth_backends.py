"""The HTTP round trip with authentication on, on both backends: every transaction with the
role that may do it, and the role that may not refused before anything is touched."""

from __future__ import annotations

import json
import logging

import pytest
from starlette.testclient import TestClient

from dicomweb.settings import Settings
from tests.security.conftest import bearer
from tests.support.builders import make_dataset, multipart_body, to_bytes
from tests.support.oidc import OidcProvider

pytestmark = pytest.mark.both_backends


def test_store_search_retrieve_feed_and_delete_with_tokens(auth_client: TestClient, oidc_provider: OidcProvider,
                                                           backend: str, auth_settings: Settings,
                                                           caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="dicomweb.audit")
    owner, writer, reader = (bearer(oidc_provider.token(client)) for client in ("owner", "writer", "reader"))
    ds = make_dataset()
    study, series, sop = ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID
    body, content_type = multipart_body([to_bytes(ds)])

    assert auth_client.post("/v1/studies", content=body, headers={"Content-Type": content_type,
                                                                   **reader}).status_code == 403
    assert auth_client.get("/v1/studies", headers=reader).status_code in (200, 204)
    stored = auth_client.post("/v1/studies", content=body, headers={"Content-Type": content_type, **writer})
    assert stored.status_code == 200, stored.text

    (found,) = auth_client.get("/v1/studies", headers=reader).json()
    assert found["0020000D"]["Value"] == [study]
    instance = f"/v1/studies/{study}/series/{series}/instances/{sop}"
    assert auth_client.get(f"{instance}/metadata", headers=reader).status_code == 200
    frame = auth_client.get(f"{instance}/frames/1", headers={
        "Accept": 'multipart/related; type="application/octet-stream"', **reader})
    assert frame.status_code == 200
    assert auth_client.get(f"{instance}/metadata").status_code == 401
    assert [entry["action"] for entry in auth_client.get("/v1/changefeed", headers=reader).json()] == ["create"]

    assert auth_client.delete(f"/v1/studies/{study}", headers=writer).status_code == 403
    assert auth_client.get(f"{instance}/metadata", headers=reader).status_code == 200  # nothing was touched
    assert auth_client.delete(f"/v1/studies/{study}", headers=owner).status_code == 204
    assert auth_client.get(f"{instance}/metadata", headers=reader).status_code == 404

    # The audit trail: a file on the embedded store; the dicomweb.audit logger in Azure.
    if backend == "azure":
        lines = [record.getMessage() for record in caplog.records if record.name == "dicomweb.audit"]
    else:
        lines = (auth_settings.data_dir / "audit.log").read_text().splitlines()
    deletes = [json.loads(line) for line in lines if json.loads(line)["method"] == "DELETE"]
    assert [(d["status"], d["caller"]) for d in deletes] == [(403, "writer"), (204, "owner")]
