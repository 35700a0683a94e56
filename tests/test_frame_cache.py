"""Hot frame GETs (issue 17): one ranged read validated against the blob's version, no index
lookup, and never the bytes of a deleted or replaced instance. On both backends."""

from __future__ import annotations

import copy
import time
from typing import Any

import pytest
from starlette.testclient import TestClient

from dicomweb.app import create_app
from dicomweb.settings import Settings
from tests.support.builders import make_dataset, multipart_body, to_bytes

pytestmark = pytest.mark.both_backends

FRAME = {"Accept": "application/octet-stream; transfer-syntax=*"}


def _store(client: TestClient, ds: Any) -> None:
    body, content_type = multipart_body([to_bytes(ds)])
    response = client.post("/v1/studies", content=body, headers={"Content-Type": content_type})
    assert response.status_code == 200, response.text


def _url(ds: Any) -> str:
    return f"/v1/studies/{ds.StudyInstanceUID}/series/{ds.SeriesInstanceUID}/instances/{ds.SOPInstanceUID}"


def _frame(ds: Any, number: int) -> bytes:
    size = ds.Rows * ds.Columns * 2
    return bytes(ds.PixelData[(number - 1) * size: number * size])


def _get_frame(client: TestClient, ds: Any, number: int) -> Any:
    return client.get(f"{_url(ds)}/frames/{number}", headers=FRAME)


class CountingIndex:
    """The app's index, counting every method called on it."""

    def __init__(self, index: Any) -> None:
        self._index = index
        self.calls: list[str] = []

    def __getattr__(self, name: str) -> Any:
        self.calls.append(name)
        return getattr(self._index, name)


def _services(client: TestClient) -> Any:
    return client.app.state.services  # type: ignore[attr-defined]


def test_a_hot_frame_asks_the_index_nothing(client: TestClient) -> None:
    ds = make_dataset(rows=8, columns=6, frames=4)
    _store(client, ds)
    assert _get_frame(client, ds, 2).content == _frame(ds, 2)  # cold: fills the cache
    services = _services(client)
    counting = CountingIndex(services.index)
    services.index = counting
    try:
        for number in (1, 3, 4, 2):
            response = _get_frame(client, ds, number)
            assert response.status_code == 200
            assert response.content == _frame(ds, number)
    finally:
        services.index = counting._index
    assert counting.calls == []


def test_deleted_then_restored_instance_serves_its_new_frames(client: TestClient) -> None:
    ds = make_dataset(rows=8, columns=6, frames=3)
    _store(client, ds)
    assert _get_frame(client, ds, 2).content == _frame(ds, 2)
    assert _get_frame(client, ds, 2).content == _frame(ds, 2)  # hot
    assert client.delete(_url(ds)).status_code == 204
    gone = _get_frame(client, ds, 2)
    assert gone.status_code == 404, gone.text
    again = copy.deepcopy(ds)  # the same UIDs, other pixels
    again.PixelData = bytes(255 - b for b in ds.PixelData)
    assert _frame(again, 2) != _frame(ds, 2)
    _store(client, again)
    for _ in range(2):  # cold, then hot
        response = _get_frame(client, again, 2)
        assert response.status_code == 200, response.text
        assert response.content == _frame(again, 2)


def test_a_blob_replaced_behind_a_hot_cache_is_not_read_with_the_old_index(client: TestClient) -> None:
    """Another process deletes and re-stores the instance with more frames: this process's
    cached frame index no longer matches the blob, so the conditional read fails and the
    GET is answered from the new copy."""
    ds = make_dataset(rows=8, columns=6, frames=2)
    _store(client, ds)
    assert _get_frame(client, ds, 2).content == _frame(ds, 2)  # cached: 2 frames
    bigger = make_dataset(study=ds.StudyInstanceUID, series=ds.SeriesInstanceUID, sop=ds.SOPInstanceUID,
                          rows=8, columns=6, frames=5, instance_number=3)
    with TestClient(create_app(_services(client).settings), base_url="http://testserver") as other:
        assert other.delete(_url(ds)).status_code == 204
        _store(other, bigger)
    response = _get_frame(client, bigger, 2)
    assert response.status_code == 200, response.text
    assert response.content == _frame(bigger, 2)
    assert _get_frame(client, bigger, 5).content == _frame(bigger, 5)


def test_a_delete_that_crashed_before_removing_the_blob_stops_being_served(settings: Settings) -> None:
    """The index no longer has the instance (tombstoned) but its blob is still there: a
    process that cached its frame index serves it for at most the cache TTL, then 404."""
    ttl = 0.5
    with TestClient(create_app(settings.with_(frame_cache_ttl_seconds=ttl)), base_url="http://testserver") as client:
        ds = make_dataset(rows=8, columns=6, frames=2)
        _store(client, ds)
        assert _get_frame(client, ds, 1).status_code == 200
        services = _services(client)
        # The delete's first step only (its process died before removing any file).
        removed = client.portal.call(  # type: ignore[union-attr]
            lambda: services.index.remove_instances(ds.StudyInstanceUID, owner="a dead process"))
        assert len(removed) == 1
        time.sleep(ttl + 0.1)
        response = _get_frame(client, ds, 1)
        assert response.status_code == 404, response.text
        assert "not found" in response.json()["message"]
