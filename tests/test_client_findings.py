"""What real clients found (issue 12), at the HTTP level: PS3.18 defaults for frames, bulk
data and instances, transcodes that are right or a 406, empty Patient ID, every method of
a path in a 405's Allow, and the change-feed follower without a server."""

from __future__ import annotations

import subprocess
import sys
from io import BytesIO
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from pydicom import Dataset, dcmread
from pydicom.data import get_testdata_file
from pydicom.encaps import encapsulate, generate_frames
from pydicom.uid import JPEGBaseline8Bit
from starlette.testclient import TestClient

from dicomweb.app import create_app
from dicomweb.settings import Settings
from tests.support.builders import DICOM, make_dataset, parse_multipart, to_bytes
from tests.support.servers import free_port

pytestmark = pytest.mark.both_backends

EXPLICIT_LE = "1.2.840.10008.1.2.1"
OCTET_PARTS = 'multipart/related; type="application/octet-stream"'
ANY_PARTS = 'multipart/related; type="*/*"'


def _store_file(client: TestClient, name: str) -> tuple[Dataset, bytes]:
    path = get_testdata_file(name)
    assert path is not None, f"pydicom's test file {name} is missing"
    raw = Path(path).read_bytes()
    response = client.post("/v1/studies", content=raw, headers={"Content-Type": DICOM})
    assert response.status_code in (200, 202), response.text  # 202: stored, with a warning
    assert "00081198" not in response.json(), response.text
    return dcmread(path), raw


def _url(ds: Dataset) -> str:
    return f"/v1/studies/{ds.StudyInstanceUID}/series/{ds.SeriesInstanceUID}/instances/{ds.SOPInstanceUID}"


def _one_part(response) -> tuple[str, bytes]:
    assert response.status_code == 200, response.text
    (headers, payload), = parse_multipart(response.content, response.headers["content-type"])
    return headers["content-type"], payload


# -- 5. Patient ID is Type 2 --------------------------------------------------------------


def test_empty_patient_id_is_stored_indexed_and_searchable(client: TestClient) -> None:
    ds, _ = _store_file(client, "emri_small.dcm")
    assert ds.PatientID == ""
    studies = client.get("/v1/studies", params={"StudyInstanceUID": ds.StudyInstanceUID}).json()
    assert len(studies) == 1
    assert "Value" not in studies[0].get("00100020", {})
    assert len(client.get("/v1/instances", params={"SOPInstanceUID": ds.SOPInstanceUID}).json()) == 1


# -- 6. a 405 lists every method of the path ------------------------------------------------


def test_a_405_allows_every_method_the_path_serves(client: TestClient) -> None:
    for method in ("PUT", "DELETE", "OPTIONS", "PATCH"):
        response = client.request(method, "/v1/studies")
        assert response.status_code == 405
        assert {m.strip() for m in response.headers["allow"].split(",")} == {"GET", "HEAD", "POST"}
    response = client.put("/v1/studies/1.2.3")
    assert {m.strip() for m in response.headers["allow"].split(",")} == {"GET", "HEAD", "POST", "DELETE"}
    assert client.get("/v1/studies").status_code == 200


def test_changefeed_tail_without_a_server_says_so_in_one_line(tmp_path: Path) -> None:
    root = f"http://127.0.0.1:{free_port()}/v1"
    result = subprocess.run(
        [sys.executable, "-m", "dicomweb", "changefeed", "tail", "--url", root, "--once",
         "--state", str(tmp_path / "position.json")], capture_output=True, text=True, timeout=120)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and root in lines[0]


# -- 2. frames and bulk data default to uncompressed -----------------------------------------


def test_compressed_frames_default_to_explicit_vr_little_endian(client: TestClient) -> None:
    ds, _ = _store_file(client, "emri_small_RLE.dcm")
    frames_url = _url(ds) + "/frames/3"
    expected = ds.pixel_array[2].astype("<u2").tobytes()
    for accept in (OCTET_PARTS, OCTET_PARTS + f"; transfer-syntax={EXPLICIT_LE}"):
        part_type, payload = _one_part(client.get(frames_url, headers={"Accept": accept}))
        assert part_type == f"application/octet-stream; transfer-syntax={EXPLICIT_LE}"
        assert payload == expected
    stored = list(generate_frames(ds.PixelData, number_of_frames=10))[2]
    for accept in (ANY_PARTS, OCTET_PARTS + "; transfer-syntax=*"):
        part_type, payload = _one_part(client.get(frames_url, headers={"Accept": accept}))
        assert part_type.endswith("transfer-syntax=1.2.840.10008.1.2.5")
        assert payload == stored


def test_compressed_pixel_bulk_data_defaults_to_uncompressed(client: TestClient) -> None:
    ds, _ = _store_file(client, "emri_small_RLE.dcm")
    url = _url(ds) + "/bulkdata/7FE00010"
    part_type, payload = _one_part(client.get(url, headers={"Accept": OCTET_PARTS}))
    assert part_type == f"application/octet-stream; transfer-syntax={EXPLICIT_LE}"
    assert payload == ds.pixel_array.astype("<u2").tobytes()
    stored = client.get(url, headers={"Accept": ANY_PARTS})
    parts = parse_multipart(stored.content, stored.headers["content-type"])
    assert len(parts) == 10 and all(h["content-type"].startswith("image/dicom-rle") for h, _ in parts)


def test_application_dicom_defaults_to_explicit_vr_little_endian(client: TestClient) -> None:
    ds, raw = _store_file(client, "emri_small_RLE.dcm")
    response = client.get(_url(ds), headers={"Accept": DICOM})
    assert response.status_code == 200
    assert response.headers["content-type"] == f"application/dicom; transfer-syntax={EXPLICIT_LE}"
    converted = dcmread(BytesIO(response.content))
    assert converted.file_meta.TransferSyntaxUID == EXPLICIT_LE
    assert np.array_equal(converted.pixel_array, ds.pixel_array)
    stored = client.get(_url(ds), headers={"Accept": DICOM + "; transfer-syntax=*"})
    assert stored.content == raw


def test_lossy_instances_are_sent_as_stored_by_default(client: TestClient) -> None:
    ds = make_dataset(rows=16, columns=16)
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = 8, 8, 7
    jpeg = BytesIO()
    Image.fromarray(np.arange(256, dtype=np.uint8).reshape(16, 16)).save(jpeg, format="JPEG")
    ds.PixelData = encapsulate([jpeg.getvalue()])
    ds["PixelData"].VR, ds["PixelData"].is_undefined_length = "OB", True
    ds.file_meta.TransferSyntaxUID = JPEGBaseline8Bit
    raw = to_bytes(ds)
    assert client.post("/v1/studies", content=raw, headers={"Content-Type": DICOM}).status_code == 200
    response = client.get(_url(ds), headers={"Accept": DICOM})
    assert response.status_code == 200
    assert response.headers["content-type"] == f"application/dicom; transfer-syntax={JPEGBaseline8Bit}"
    assert response.content == raw


# -- 3. every transcode is right and labelled, or a 406 -----------------------------------


def test_big_endian_instance_converted_to_explicit_vr_little_endian(client: TestClient) -> None:
    ds, raw = _store_file(client, "emri_small_big_endian.dcm")
    single = client.get(_url(ds), headers={"Accept": DICOM + f"; transfer-syntax={EXPLICIT_LE}"})
    assert single.status_code == 200
    assert single.headers["content-type"] == f"application/dicom; transfer-syntax={EXPLICIT_LE}"
    multi = client.get(_url(ds), headers={
        "Accept": f'multipart/related; type="application/dicom"; transfer-syntax={EXPLICIT_LE}'})
    part_type, payload = _one_part(multi)
    assert part_type == f"application/dicom; transfer-syntax={EXPLICIT_LE}"
    for body in (single.content, payload):
        converted = dcmread(BytesIO(body))
        assert converted.file_meta.TransferSyntaxUID == EXPLICIT_LE
        assert np.array_equal(converted.pixel_array, ds.pixel_array)
        assert converted.Rows == ds.Rows and converted.SOPInstanceUID == ds.SOPInstanceUID
    stored = client.get(_url(ds), headers={"Accept": DICOM + "; transfer-syntax=*"})
    assert stored.headers["content-type"] == "application/dicom; transfer-syntax=1.2.840.10008.1.2.2"
    assert stored.content == raw


def test_big_endian_frames_asked_as_little_endian_are_swapped(client: TestClient) -> None:
    ds, _ = _store_file(client, "emri_small_big_endian.dcm")
    frames_url = _url(ds) + "/frames/2"
    for accept in (OCTET_PARTS, OCTET_PARTS + f"; transfer-syntax={EXPLICIT_LE}"):
        part_type, payload = _one_part(client.get(frames_url, headers={"Accept": accept}))
        assert part_type == f"application/octet-stream; transfer-syntax={EXPLICIT_LE}"
        assert payload == ds.pixel_array[1].astype("<u2").tobytes()
    part_type, payload = _one_part(client.get(frames_url, headers={"Accept": ANY_PARTS}))
    assert part_type == "application/octet-stream; transfer-syntax=1.2.840.10008.1.2.2"
    assert payload == ds.pixel_array[1].astype(">u2").tobytes()


def test_deflated_frames_are_labelled_with_what_is_sent(client: TestClient) -> None:
    ds, _ = _store_file(client, "image_dfl.dcm")
    for accept in (OCTET_PARTS, OCTET_PARTS + f"; transfer-syntax={EXPLICIT_LE}", ANY_PARTS):
        part_type, payload = _one_part(client.get(_url(ds) + "/frames/1", headers={"Accept": accept}))
        assert part_type == f"application/octet-stream; transfer-syntax={EXPLICIT_LE}"
        assert payload == ds.PixelData


def test_conversion_over_the_limit_is_a_406_before_any_byte(settings: Settings) -> None:
    with TestClient(create_app(settings.with_(transcode_max_bytes=10_000))) as client:
        ds, raw = _store_file(client, "emri_small_big_endian.dcm")
        for accept in (DICOM, f'multipart/related; type="application/dicom"; transfer-syntax={EXPLICIT_LE}'):
            response = client.get(_url(ds), headers={"Accept": accept})
            assert response.status_code == 406
            assert "DICOMWEB_TRANSCODE_MAX_BYTES" in response.json()["message"]
        assert client.get(_url(ds), headers={"Accept": DICOM + "; transfer-syntax=*"}).content == raw


# -- 1. includefield answered from the stored headers ------------------------------------------


def _with_header_extras() -> Dataset:
    ds = make_dataset(rows=8, columns=6, frames=2)
    ds.ImageType = ["ORIGINAL", "PRIMARY", "VOLUME"]
    ds.PixelSpacing = [0.5, 0.25]
    ds.PatientWeight = "71.5"
    ds.ManufacturerModelName = "Scanner 9"
    item = Dataset()
    item.OpticalPathIdentifier = "1"
    item.ICCProfile = b"\x00\x01" * 700  # bulk data inside a sequence
    ds.OpticalPathSequence = [item]
    ds.LargestImagePixelValue = 4000
    return ds


def test_instance_includefield_answers_any_stored_attribute(client: TestClient) -> None:
    ds = _with_header_extras()
    assert client.post("/v1/studies", content=to_bytes(ds), headers={"Content-Type": DICOM}).status_code == 200
    fields = "SamplesPerPixel,PhotometricInterpretation,ImageType,00280030,TransferSyntaxUID,TotalPixelMatrixRows"
    url = f"/v1/studies/{ds.StudyInstanceUID}/series/{ds.SeriesInstanceUID}/instances"
    (found,) = client.get(url, params={"includefield": fields}).json()
    assert found["00280002"] == {"vr": "US", "Value": [1]}
    assert found["00280004"]["Value"] == ["MONOCHROME2"]
    assert found["00080008"]["Value"] == ["ORIGINAL", "PRIMARY", "VOLUME"]
    assert found["00280030"]["Value"] == [0.5, 0.25]
    assert found["00020010"] == {"vr": "UI", "Value": [EXPLICIT_LE]}
    assert "00480007" not in found  # not in this header: nothing invented
    assert "00280107" not in found  # not asked for
    (everything,) = client.get(url, params={"includefield": "all"}).json()
    assert everything["00280107"]["Value"] == [4000]
    assert "7FE00010" not in everything
    (path,) = everything["00480105"]["Value"]
    assert path["00480106"]["Value"] == ["1"] and "00282000" not in path  # no bulk data, even nested


def test_study_and_series_includefield_return_their_modules(client: TestClient) -> None:
    ds = _with_header_extras()
    assert client.post("/v1/studies", content=to_bytes(ds), headers={"Content-Type": DICOM}).status_code == 200
    (study,) = client.get("/v1/studies", params={"StudyInstanceUID": ds.StudyInstanceUID,
                                                 "includefield": "PatientWeight"}).json()
    assert study["00101030"]["Value"] == [71.5]
    (series,) = client.get(f"/v1/studies/{ds.StudyInstanceUID}/series",
                           params={"includefield": "all"}).json()
    assert series["00081090"]["Value"] == ["Scanner 9"]
    assert "00280002" not in series  # an instance attribute is not a series one


def test_pixel_bulk_data_of_an_instance_without_pixels_is_404(client: TestClient) -> None:
    ds = make_dataset()
    del ds.PixelData
    assert client.post("/v1/studies", content=to_bytes(ds), headers={"Content-Type": DICOM}).status_code == 200
    response = client.get(_url(ds) + "/bulkdata/7FE00010", headers={"Accept": OCTET_PARTS})
    assert response.status_code == 404
    assert "no pixel data" in response.json()["message"]
