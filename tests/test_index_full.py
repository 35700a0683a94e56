"""A real "database or disk is full" from SQLite (its page limit reached) during STOW: 507
naming the cause, the file removed again, and the retry after space is freed stored."""

from __future__ import annotations

from starlette.testclient import TestClient

from dicomcore import layout
from dicomweb.storage.port import BlobNotFoundError
from tests.support.builders import make_dataset, multipart_body, to_bytes


def _limit_pages(client: TestClient, extra: int | None) -> None:
    """Cap (or, with ``None``, uncap) the index database's size on every pooled connection."""
    index = client.app.state.services.index  # type: ignore[attr-defined]
    for connection in index._idle:
        (pages,) = connection.execute("PRAGMA page_count").fetchone()
        connection.execute(f"PRAGMA max_page_count = {pages + extra if extra is not None else 1 << 30}")


def test_index_full_is_507_and_nothing_stays_stored(client: TestClient) -> None:
    first = make_dataset()
    body, content_type = multipart_body([to_bytes(first)])
    assert client.post("/v1/studies", content=body, headers={"Content-Type": content_type}).status_code == 200
    _limit_pages(client, 0)
    ds = make_dataset(study="1.2.3.4.5.6.7.8.9." + "1" * 40)
    body, content_type = multipart_body([to_bytes(ds)])
    response = client.post("/v1/studies", content=body, headers={"Content-Type": content_type})
    assert response.status_code == 507, response.text
    (failed,) = response.json()["00081198"]["Value"]
    assert failed["00081197"]["Value"] == [272] and "insufficient storage" in failed["00000902"]["Value"][0]
    services = client.app.state.services  # type: ignore[attr-defined]
    key = layout.instance_key(ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID)
    try:
        client.portal.call(services.blobs.size, layout.file_name(key))  # type: ignore[union-attr]
        raise AssertionError("the file of a failed instance stayed stored")
    except BlobNotFoundError:
        pass
    _limit_pages(client, None)  # space freed
    assert client.post("/v1/studies", content=body, headers={"Content-Type": content_type}).status_code == 200
