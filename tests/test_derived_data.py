"""Where an instance's derived data (metadata JSON, frame index) lives, and every reader of it.

The embedded store keeps it in the SQLite index (the frame index committed with the
record) and writes no file beside an instance; the Azure adapters keep sidecar files. Each
reader — metadata at study, series and instance level, frames (stored and converted),
rendered, bulk data, a converting study retrieve, QIDO includefield, the change feed with
metadata — answers the same bytes on a store made before this change (sidecar files, no
frame index in the index: what an older version left) as on a store made now.
"""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import Callable
from io import BytesIO
from pathlib import Path

import pytest
from pydicom import dcmread
from pydicom.data import get_testdata_file
from starlette.testclient import TestClient

from dicomcore import layout
from dicomweb.app import create_app
from dicomweb.settings import Settings
from dicomweb.usecases.sidecars import SidecarFiles
from tests.support.builders import DICOM, make_dataset, multipart_body, parse_multipart, to_bytes
from tests.support.import_area import put_import_files, wait_for_operation

pytestmark = pytest.mark.both_backends

NATIVE_LE = "1.2.840.10008.1.2.1"
SIDECAR_NAMES = ("metadata.json", "frames.json")

@pytest.fixture
def settings(settings: Settings) -> Settings:
    # A fresh import container per Azure test (the embedded one is under the test's folder).
    return settings.with_(import_container=f"import-{uuid.uuid4().hex[:12]}")


Answer = tuple[int, str, object]
"""Status, media type (boundary left out), body (multipart bodies as their parts)."""


def _instance_url(ds) -> str:
    return f"/v1/studies/{ds.StudyInstanceUID}/series/{ds.SeriesInstanceUID}/instances/{ds.SOPInstanceUID}"


def _store(client: TestClient) -> tuple:
    native = make_dataset(rows=64, columns=48, frames=3)
    native_second = make_dataset(study=native.StudyInstanceUID, series=native.SeriesInstanceUID, instance_number=2)
    body, content_type = multipart_body([to_bytes(native), to_bytes(native_second)])
    assert client.post("/v1/studies", content=body, headers={"Content-Type": content_type}).status_code == 200
    path = get_testdata_file("SC_rgb_jpeg_gdcm.dcm")
    jpeg = dcmread(path)
    stored = client.post("/v1/studies", content=Path(path).read_bytes(), headers={"Content-Type": DICOM})
    assert stored.status_code == 200, stored.text
    return native, native_second, jpeg


def _requests(native, jpeg) -> list[tuple[str, dict[str, str]]]:
    """One request per reader of the derived data."""
    instance, compressed = _instance_url(native), _instance_url(jpeg)
    octets = 'multipart/related; type="application/octet-stream"'
    return [
        (f"/v1/studies/{native.StudyInstanceUID}/metadata", {}),
        (f"/v1/studies/{native.StudyInstanceUID}/series/{native.SeriesInstanceUID}/metadata", {}),
        (instance + "/metadata", {}),
        (compressed + "/metadata", {}),
        (instance + "/frames/2", {"Accept": "application/octet-stream"}),
        (instance + "/frames/1,3", {"Accept": octets}),
        (instance + "/frames/2", {"Accept": 'multipart/related; type="image/jp2"'}),  # converted: reads metadata
        (compressed + "/frames/1", {"Accept": f"{octets}; transfer-syntax={NATIVE_LE}"}),  # decoded
        (compressed + "/frames/1", {"Accept": 'multipart/related; type="image/jpeg"'}),  # as stored
        (instance + "/frames/1/rendered", {"Accept": "image/png"}),
        (compressed + "/rendered", {"Accept": "image/png"}),
        (instance + "/bulkdata/7FE00010", {"Accept": octets}),
        (compressed + "/bulkdata/7FE00010", {"Accept": f"{octets}; transfer-syntax={NATIVE_LE}"}),
        (f"/v1/studies/{jpeg.StudyInstanceUID}",
         {"Accept": f'multipart/related; type="application/dicom"; transfer-syntax={NATIVE_LE}'}),
        (f"/v1/instances?StudyInstanceUID={native.StudyInstanceUID}&includefield=all", {}),
        (f"/v1/studies/{native.StudyInstanceUID}/instances?includefield=00280010,00280011,00200013", {}),
        ("/v1/changefeed?includeMetadata=true", {}),
    ]


def _answers(client: TestClient, requests: list[tuple[str, dict[str, str]]]) -> dict[str, Answer]:
    answers: dict[str, Answer] = {}
    for url, headers in requests:
        response = client.get(url, headers=headers)
        content_type = response.headers.get("content-type", "")
        body: object = response.content
        if content_type.startswith("multipart/"):  # boundaries differ per response
            body = [_comparable(part_headers, part) for part_headers, part in
                    parse_multipart(response.content, content_type)]
            content_type = content_type.split(";")[0]
        answers[f"{url} {headers}"] = (response.status_code, content_type, body)
    return answers


def _comparable(headers: dict[str, str], part: bytes) -> tuple[dict[str, str], bytes]:
    """A converted instance gets a new UID in its File Meta each time: its pixel data is
    what the derived data decides."""
    if headers.get("content-type", "").startswith("application/dicom"):
        return headers, dcmread(BytesIO(part)).PixelData
    return headers, part


def _sidecar_files(settings: Settings) -> list[Path]:
    return [path for path in settings.data_dir.rglob("*") if path.name in SIDECAR_NAMES]


def _keys(*datasets) -> list[str]:
    return [layout.instance_key(ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID) for ds in datasets]


def _as_made_before(client: TestClient, settings: Settings, keys: list[str]) -> None:
    """Turn the store into what an older version left: sidecar files beside each instance
    and no frame index in the index (embedded); on Blob Storage, the sidecars lost (a crash
    after the commit), to be rebuilt from the files."""
    services = client.app.state.services
    sidecars = SidecarFiles(services.blobs, services.index, settings.bulkdata_threshold)
    for key in keys:
        if settings.index_store == "sqlite":
            client.portal.call(sidecars.rebuild, key)
        else:
            for name in (layout.metadata_name(key), layout.frames_name(key)):
                client.portal.call(services.blobs.delete, name)
    if settings.index_store == "sqlite":
        with sqlite3.connect(settings.data_dir / "index.sqlite") as connection:
            connection.execute("DELETE FROM instance_frames")


def _fresh_app(settings: Settings, check: Callable[[TestClient], None]) -> None:
    """A new app on the same store: nothing cached from the earlier answers."""
    with TestClient(create_app(settings), base_url="http://testserver") as fresh:
        check(fresh)


def test_every_reader_answers_alike_on_a_store_made_before(client: TestClient, settings: Settings) -> None:
    native, second, jpeg = _store(client)
    requests = _requests(native, jpeg)
    now = _answers(client, requests)
    assert all(status == 200 for status, _, _ in now.values()), {k: v[0] for k, v in now.items() if v[0] != 200}
    frame = now[f"{_instance_url(native)}/frames/2 {{'Accept': 'application/octet-stream'}}"][2]
    size = 64 * 48 * 2
    assert frame == native.PixelData[size: 2 * size]
    if settings.index_store == "sqlite":
        assert _sidecar_files(settings) == []  # STOW wrote the instance files only; reading wrote nothing
        assert _frame_indexes_held(settings) == 3
    else:  # Blob Storage keeps sidecars
        blobs = client.app.state.services.blobs
        assert all(client.portal.call(blobs.size, layout.frames_name(key)) > 0 for key in _keys(native, second, jpeg))
    _as_made_before(client, settings, _keys(native, second, jpeg))
    _fresh_app(settings, lambda fresh: _assert_same(_answers(fresh, requests), now))


def _assert_same(later: dict[str, Answer], before: dict[str, Answer]) -> None:
    assert later.keys() == before.keys()
    for request, answer in before.items():
        assert later[request] == answer, request


def test_an_older_instance_whose_sidecars_are_gone_is_served_from_its_file(
        client: TestClient, settings: Settings) -> None:
    native, second, jpeg = _store(client)
    requests = _requests(native, jpeg)
    now = _answers(client, requests)
    keys = _keys(native, second, jpeg)
    _as_made_before(client, settings, keys)
    for key in keys:  # lost as well: the frame index comes from the instance file
        for name in (layout.metadata_name(key), layout.frames_name(key)):
            client.portal.call(client.app.state.services.blobs.delete, name)
    _fresh_app(settings, lambda fresh: _assert_same(_answers(fresh, requests), now))


def test_a_deleted_instance_leaves_no_derived_data(client: TestClient, settings: Settings) -> None:
    native, second, jpeg = _store(client)
    assert client.delete(_instance_url(native)).status_code == 204
    assert client.get(_instance_url(native) + "/frames/1").status_code == 404
    assert client.get(_instance_url(native) + "/metadata").status_code == 404
    feed = client.get("/v1/changefeed?includeMetadata=true").json()
    assert [entry["metadata"] for entry in feed if entry["sopInstanceUid"] == native.SOPInstanceUID] == [None, None]
    if settings.index_store == "sqlite":  # the other two instances'; the deleted one's went with its record
        assert _frame_indexes_held(settings) == 2


def test_imported_instances_have_their_derived_data(client: TestClient, settings: Settings) -> None:
    """Bulk import commits a batch's records with their frame indexes (embedded) or writes
    their sidecars (Azure); either way frames and metadata come back."""
    first = make_dataset(rows=8, columns=8, frames=2)
    datasets = [first, *(make_dataset(study=first.StudyInstanceUID, rows=8, columns=8, frames=2,
                                      instance_number=i + 2) for i in range(5))]
    put_import_files(settings, {f"derived/{i}.dcm": to_bytes(ds) for i, ds in enumerate(datasets)})
    started = client.post("/v1/import", json={"source": {"prefix": "derived/"}})
    assert started.status_code == 202, started.text
    assert wait_for_operation(client.get, started.json()["href"])["results"]["imported"] == len(datasets)
    for ds in datasets:
        frame = client.get(_instance_url(ds) + "/frames/2", headers={"Accept": "application/octet-stream"})
        assert frame.content == ds.PixelData[8 * 8 * 2:]
        assert client.get(_instance_url(ds) + "/metadata").json()[0]["00080018"]["Value"] == [ds.SOPInstanceUID]
    if settings.index_store == "sqlite":
        assert _sidecar_files(settings) == []
        assert _frame_indexes_held(settings) == len(datasets)


def _frame_indexes_held(settings: Settings) -> int:
    with sqlite3.connect(settings.data_dir / "index.sqlite") as connection:
        (held,) = connection.execute("SELECT COUNT(*) FROM instance_frames").fetchone()
    return int(held)
