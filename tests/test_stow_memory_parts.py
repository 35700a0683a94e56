"""STOW parts received in memory (``DICOMWEB_STOW_MEMORY_PART_BYTES``) and spooled ones, at the
HTTP level on both backends: parts exactly at the limit (held in memory), a byte over it
(spooled), or of both kinds in one request, are stored byte for byte with the right SHA-256,
and a part that is refused leaves nothing behind (docs/stow-receive.md)."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from io import BytesIO
from typing import Any

import pytest
from pydicom import dcmread
from pydicom.dataset import Dataset
from starlette.testclient import TestClient

from dicomweb.settings import Settings
from tests.support.builders import DICOM, make_dataset, many_instances, multipart_body, to_bytes

pytestmark = pytest.mark.both_backends

FAILED_SEQ, FAILURE_REASON = "00081198", "00081197"


STUDY = "1.2.826.0.1.3680043.10.543.17"
SAME_SIZE = many_instances(STUDY, 2)
"""Two instances of one series, both N bytes long."""
N = len(SAME_SIZE[0])
LARGER = to_bytes(make_dataset(study=STUDY, rows=64, columns=64))
"""A third, well over N bytes: spooled whenever the limit is about N."""
ALL = [*SAME_SIZE, LARGER]


@pytest.fixture(params=[N, N - 1], ids=["parts-at-the-limit", "parts-a-byte-over"])
def settings(settings: Settings, request: pytest.FixtureRequest) -> Settings:
    # The process-wide budget has room for one such part: the next ones are spooled meanwhile.
    return settings.with_(stow_memory_part_bytes=request.param, stow_memory_total_bytes=N + N // 2)


@pytest.fixture(autouse=True)
def _budget_given_back(client: TestClient) -> Iterator[None]:
    """Every byte counted as held in memory is given back once its request is answered."""
    yield
    budget = getattr(client.app.state, "stow_memory_budget", None)  # type: ignore[attr-defined]
    assert budget is None or budget.held == 0


def _uids(raw: bytes) -> Dataset:
    return dcmread(BytesIO(raw), stop_before_pixels=True)


def _url(raw: bytes) -> str:
    ds = _uids(raw)
    return f"/v1/studies/{ds.StudyInstanceUID}/series/{ds.SeriesInstanceUID}/instances/{ds.SOPInstanceUID}"


def _record(client: TestClient, raw: bytes) -> Any:
    ds = _uids(raw)
    index = client.app.state.services.index  # type: ignore[attr-defined]
    return client.portal.call(index.get_instance, ds.StudyInstanceUID, ds.SeriesInstanceUID,  # type: ignore[union-attr]
                              ds.SOPInstanceUID)


def _staged_files(client: TestClient, settings: Settings) -> list[str]:
    """What is left in the embedded store's staging folder (the Azure store's is shared)."""
    if settings.blob_store == "azure":
        return []
    blobs = client.app.state.services.blobs  # type: ignore[attr-defined]
    return sorted(path.name for path in blobs.staging_dir.iterdir())


def test_parts_at_and_over_the_limit_are_stored_byte_for_byte_with_their_checksum(
        client: TestClient, settings: Settings) -> None:
    body, content_type = multipart_body(ALL)
    response = client.post("/v1/studies", content=body, headers={"Content-Type": content_type})
    assert response.status_code == 200, response.text
    assert [item["00081155"]["Value"][0] for item in response.json()["00081199"]["Value"]] == [
        _uids(raw).SOPInstanceUID for raw in ALL]
    for raw in ALL:
        stored = client.get(_url(raw), headers={"Accept": DICOM})
        assert stored.status_code == 200
        assert stored.content == raw
        assert _record(client, raw).sha256 == hashlib.sha256(raw).hexdigest()
    assert _staged_files(client, settings) == []


def test_single_part_body_is_stored_with_its_checksum(client: TestClient, settings: Settings) -> None:
    for raw in ALL:
        response = client.post("/v1/studies", content=raw, headers={"Content-Type": DICOM})
        assert response.status_code == 200, response.text
        assert client.get(_url(raw), headers={"Accept": DICOM}).content == raw
        assert _record(client, raw).sha256 == hashlib.sha256(raw).hexdigest()
    assert _staged_files(client, settings) == []


def test_refused_parts_leave_nothing_behind(client: TestClient, settings: Settings) -> None:
    first = SAME_SIZE[0]
    assert client.post("/v1/studies", content=first, headers={"Content-Type": DICOM}).status_code == 200
    body, content_type = multipart_body(ALL)
    # Into another study's URL: all fail (43265) and nothing is stored or left staged.
    response = client.post("/v1/studies/1.2.3.4.5.6.7.8.9", content=body, headers={"Content-Type": content_type})
    assert response.status_code == 409, response.text
    assert _reasons(response.json()) == [43265] * 3
    assert client.get(_url(LARGER), headers={"Accept": DICOM}).status_code == 404
    # Sent again: the stored copy stays (45070), the others are stored; nothing left staged.
    response = client.post("/v1/studies", content=body, headers={"Content-Type": content_type})
    assert response.status_code == 202, response.text
    assert _reasons(response.json()) == [45070]
    for raw in ALL:
        assert client.get(_url(raw), headers={"Accept": DICOM}).content == raw
    assert _staged_files(client, settings) == []
    # Parts that are not DICOM fail alone, whether held in memory or spooled.
    junk = b"not a DICOM file" * (N // 16 + 1)
    body, content_type = multipart_body([junk[:N], junk[:N + 1]])
    response = client.post("/v1/studies", content=body, headers={"Content-Type": content_type})
    assert response.status_code == 409, response.text
    assert _reasons(response.json()) == [43264, 43264]
    assert _staged_files(client, settings) == []
    # Cut short inside a part held in memory: 400, and its bytes are given back (see the fixture).
    body, content_type = multipart_body([SAME_SIZE[1]])
    response = client.post("/v1/studies", content=body[: len(body) // 2], headers={"Content-Type": content_type})
    assert response.status_code == 400, response.text
    assert _staged_files(client, settings) == []


def _reasons(body: dict[str, Any]) -> list[int]:
    return [item[FAILURE_REASON]["Value"][0] for item in body[FAILED_SEQ]["Value"]]
