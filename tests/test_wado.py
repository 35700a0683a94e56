"""WADO-RS at the HTTP level: instances, metadata, frames, bulk data, negotiation."""

from __future__ import annotations

from io import BytesIO
from pathlib import Path

import numpy as np
import pytest
from pydicom import dcmread
from pydicom.uid import ImplicitVRLittleEndian
from starlette.testclient import TestClient

from tests.support.builders import DICOM, make_dataset, multipart_body, parse_multipart, to_bytes

pytestmark = pytest.mark.both_backends

OCTET = "application/octet-stream"


def _store(client: TestClient, *datasets) -> None:
    body, content_type = multipart_body([to_bytes(ds) for ds in datasets])
    response = client.post("/v1/studies", content=body, headers={"Content-Type": content_type})
    assert response.status_code == 200, response.text


def _instance_url(ds) -> str:
    return f"/v1/studies/{ds.StudyInstanceUID}/series/{ds.SeriesInstanceUID}/instances/{ds.SOPInstanceUID}"


@pytest.fixture
def multiframe(client: TestClient):
    ds = make_dataset(rows=8, columns=6, frames=5)
    _store(client, ds)
    return ds


def _frame(ds, number: int) -> bytes:
    size = ds.Rows * ds.Columns * 2
    return ds.PixelData[(number - 1) * size: number * size]


def test_study_retrieve_is_multipart_of_every_instance(client: TestClient) -> None:
    first = make_dataset()
    second = make_dataset(study=first.StudyInstanceUID, series=first.SeriesInstanceUID, instance_number=2)
    _store(client, first, second)
    for accept in (None, "*/*", 'multipart/related; type="application/dicom"',
                   "multipart/related; type=application/dicom; transfer-syntax=*"):
        headers = {"Accept": accept} if accept else {}
        response = client.get(f"/v1/studies/{first.StudyInstanceUID}", headers=headers)
        assert response.status_code == 200, (accept, response.text)
        assert response.headers["content-type"].startswith("multipart/related")
        parts = parse_multipart(response.content, response.headers["content-type"])
        assert sorted(p for _, p in parts) == sorted([to_bytes(first), to_bytes(second)])
        assert all("transfer-syntax=1.2.840.10008.1.2.1" in h["content-type"] for h, _ in parts)


def test_single_part_needs_one_instance(client: TestClient) -> None:
    first = make_dataset()
    second = make_dataset(study=first.StudyInstanceUID)
    _store(client, first, second)
    response = client.get(f"/v1/studies/{first.StudyInstanceUID}", headers={"Accept": DICOM})
    assert response.status_code == 406
    assert "one instance" in response.json()["message"]


def test_transcode_to_explicit_little_endian(client: TestClient) -> None:
    ds = make_dataset()
    ds.file_meta.TransferSyntaxUID = ImplicitVRLittleEndian
    out = BytesIO()
    ds.save_as(out, enforce_file_format=True, implicit_vr=True)
    client.post("/v1/studies", content=out.getvalue(), headers={"Content-Type": DICOM})
    response = client.get(_instance_url(ds), headers={
        "Accept": 'multipart/related; type="application/dicom"; transfer-syntax=1.2.840.10008.1.2.1'})
    assert response.status_code == 200, response.text
    (headers, payload), = parse_multipart(response.content, response.headers["content-type"])
    converted = dcmread(BytesIO(payload))
    assert converted.file_meta.TransferSyntaxUID == "1.2.840.10008.1.2.1"
    assert converted.PixelData == ds.PixelData
    # PS3.18 §8.7.3: application/dicom without a transfer-syntax is Explicit VR Little Endian.
    default = client.get(_instance_url(ds), headers={"Accept": DICOM})
    assert default.headers["content-type"] == "application/dicom; transfer-syntax=1.2.840.10008.1.2.1"
    assert dcmread(BytesIO(default.content)).file_meta.TransferSyntaxUID == "1.2.840.10008.1.2.1"
    as_stored = client.get(_instance_url(ds), headers={"Accept": DICOM + "; transfer-syntax=*"})
    assert as_stored.content == out.getvalue()


def test_unsupported_transcode_is_406_with_reason(client: TestClient, multiframe) -> None:
    response = client.get(_instance_url(multiframe), headers={
        "Accept": 'multipart/related; type="application/dicom"; transfer-syntax=1.2.840.10008.1.2.4.90'})
    assert response.status_code == 406
    assert "1.2.840.10008.1.2.4.90" in response.json()["message"]


def test_missing_resources_are_404(client: TestClient, multiframe) -> None:
    ds = multiframe
    assert client.get("/v1/studies/1.2.3.4").status_code == 404
    assert client.get(f"/v1/studies/{ds.StudyInstanceUID}/series/1.2.3").status_code == 404
    response = client.get(f"/v1/studies/{ds.StudyInstanceUID}/series/{ds.SeriesInstanceUID}/instances/1.2/metadata")
    assert response.status_code == 404
    assert "1.2" in response.json()["message"]
    assert client.get("/v1/studies/not..valid").status_code == 400


def test_metadata_has_bulkdata_uris_and_etag(client: TestClient, multiframe) -> None:
    ds = multiframe
    response = client.get(f"/v1/studies/{ds.StudyInstanceUID}/metadata")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/dicom+json")
    (instance,) = response.json()
    assert instance["00100020"]["Value"] == ["PAT-1"]
    assert instance["00100010"]["Value"] == [{"Alphabetic": "DOE^JOHN"}]
    uri = instance["7FE00010"]["BulkDataURI"]
    assert uri == f"http://testserver{_instance_url(ds)}/bulkdata/7FE00010"
    etag = response.headers["etag"]
    again = client.get(f"/v1/studies/{ds.StudyInstanceUID}/metadata", headers={"If-None-Match": etag})
    assert again.status_code == 304
    series = client.get(f"/v1/studies/{ds.StudyInstanceUID}/series/{ds.SeriesInstanceUID}/metadata")
    assert series.json() == response.json()
    assert client.get(_instance_url(ds) + "/metadata").json() == response.json()


def test_metadata_etag_changes_when_an_instance_is_added(client: TestClient, multiframe) -> None:
    url = f"/v1/studies/{multiframe.StudyInstanceUID}/metadata"
    etag = client.get(url).headers["etag"]
    _store(client, make_dataset(study=multiframe.StudyInstanceUID, instance_number=9))
    response = client.get(url, headers={"If-None-Match": etag})
    assert response.status_code == 200
    assert len(response.json()) == 2


def test_bulkdata_returns_pixel_data(client: TestClient, multiframe) -> None:
    response = client.get(_instance_url(multiframe) + "/bulkdata/7FE00010")
    assert response.status_code == 200
    (_, payload), = parse_multipart(response.content, response.headers["content-type"])
    assert payload == multiframe.PixelData


@pytest.mark.parametrize("accept", [
    'multipart/related; type="application/octet-stream"',
    'multipart/related; type="application/octet-stream"; transfer-syntax=*',
    "multipart/related; type=application/octet-stream; transfer-syntax=1.2.840.10008.1.2.1",
    'multipart/related; type="*/*"',
    "*/*",
    None,
    "application/json;q=0.5, multipart/related; type=application/octet-stream;q=0.9",
])
def test_frames_multipart(client: TestClient, multiframe, accept) -> None:
    headers = {"Accept": accept} if accept else {}
    response = client.get(_instance_url(multiframe) + "/frames/1,3,5", headers=headers)
    assert response.status_code == 200, (accept, response.text)
    parts = parse_multipart(response.content, response.headers["content-type"])
    assert [payload for _, payload in parts] == [_frame(multiframe, n) for n in (1, 3, 5)]
    assert all(h["content-type"].startswith(OCTET) for h, _ in parts)


def test_single_part_frame(client: TestClient, multiframe) -> None:
    response = client.get(_instance_url(multiframe) + "/frames/2",
                          headers={"Accept": "application/octet-stream; transfer-syntax=*"})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith(OCTET)
    assert response.content == _frame(multiframe, 2)
    several = client.get(_instance_url(multiframe) + "/frames/1,2",
                         headers={"Accept": "application/octet-stream; transfer-syntax=*"})
    assert several.status_code == 406


def test_frame_numbers_are_checked(client: TestClient, multiframe) -> None:
    url = _instance_url(multiframe) + "/frames/"
    assert client.get(url + "0").status_code == 400
    assert client.get(url + "abc").status_code == 400
    assert client.get(url + "1,,2").status_code == 400
    response = client.get(url + "6")
    assert response.status_code == 404
    assert "5 frame" in response.json()["message"]


def test_frames_that_cannot_be_converted_are_406(client: TestClient, multiframe) -> None:
    response = client.get(_instance_url(multiframe) + "/frames/1",
                          headers={"Accept": 'multipart/related; type="image/jpeg"'})
    assert response.status_code == 406  # baseline JPEG holds 8-bit pixels; these are 16-bit
    assert "image/jpeg" in response.json()["message"]
    response = client.get(_instance_url(multiframe) + "/frames/1",
                          headers={"Accept": 'multipart/related; type="image/dicom-rle"'})
    assert response.status_code == 406
    assert "image/dicom-rle" in response.json()["message"]


def test_native_frames_converted_to_jpeg_2000_losslessly(client: TestClient) -> None:
    import openjpeg

    ds = make_dataset(rows=64, columns=48, frames=3)
    _store(client, ds)
    response = client.get(_instance_url(ds) + "/frames/2,3", headers={"Accept": 'multipart/related; type="image/jp2"'})
    assert response.status_code == 200, response.text
    parts = parse_multipart(response.content, response.headers["content-type"])
    assert all(h["content-type"] == "image/jp2; transfer-syntax=1.2.840.10008.1.2.4.90" for h, _ in parts)
    for (_, payload), number in zip(parts, (2, 3), strict=True):
        decoded = openjpeg.decode(payload)
        assert decoded.tobytes() == _frame(ds, number)


def test_native_8_bit_frames_converted_to_jpeg(client: TestClient) -> None:
    from PIL import Image

    ds = make_dataset(rows=32, columns=32, frames=2)
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = 8, 8, 7
    ds.PixelData = bytes(range(256)) * 8
    _store(client, ds)
    response = client.get(_instance_url(ds) + "/frames/1", headers={"Accept": "image/jpeg"})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("image/jpeg")
    assert Image.open(BytesIO(response.content)).size == (32, 32)


def test_frames_of_compressed_data_decoded_to_native(client: TestClient) -> None:
    from pydicom.data import get_testdata_file

    path = get_testdata_file("SC_rgb_jpeg_gdcm.dcm")
    raw = Path(path).read_bytes()
    original = dcmread(path)
    client.post("/v1/studies", content=raw, headers={"Content-Type": DICOM})
    url = _instance_url(original) + "/frames/1"
    stored = client.get(url, headers={"Accept": 'multipart/related; type="image/jpeg"'})
    assert stored.status_code == 200
    (headers, jpeg), = parse_multipart(stored.content, stored.headers["content-type"])
    assert headers["content-type"].startswith("image/jpeg") and jpeg[:2] == b"\xff\xd8"
    decoded = client.get(url, headers={
        "Accept": 'multipart/related; type="application/octet-stream"; transfer-syntax=1.2.840.10008.1.2.1'})
    assert decoded.status_code == 200, decoded.text
    (_, pixels), = parse_multipart(decoded.content, decoded.headers["content-type"])
    expected = original.pixel_array
    assert np.frombuffer(pixels, dtype=np.uint8).size == expected.size


def test_lost_sidecars_are_rebuilt_from_the_file(client: TestClient, multiframe, backend: str) -> None:
    """Sidecars are written without fsync; a crash may lose or truncate them. (The embedded
    store writes none: its index holds metadata and frame index, and a stray sidecar is
    never read for an instance the index holds them for.)"""
    from dicomcore import layout
    from dicomweb.storage.port import BlobNotFoundError

    key = layout.instance_key(multiframe.StudyInstanceUID, multiframe.SeriesInstanceUID, multiframe.SOPInstanceUID)
    blobs = client.app.state.services.blobs
    before = client.get(_instance_url(multiframe) + "/metadata").json()
    client.portal.call(blobs.put_bytes, layout.metadata_name(key), b'{"00100010":')  # cut short by a crash
    client.portal.call(blobs.delete, layout.frames_name(key))
    assert client.get(_instance_url(multiframe) + "/metadata").json() == before
    response = client.get(_instance_url(multiframe) + "/frames/3", headers={"Accept": "application/octet-stream"})
    assert response.content == _frame(multiframe, 3)
    if backend == "azure":
        assert client.portal.call(blobs.size, layout.frames_name(key)) > 0
    else:
        with pytest.raises(BlobNotFoundError):
            client.portal.call(blobs.size, layout.frames_name(key))
