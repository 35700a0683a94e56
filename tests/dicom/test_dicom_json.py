"""DICOM JSON of instance headers: bulk data URIs, tag paths, and resolving them back."""

from __future__ import annotations

import base64
import io
from pathlib import Path

import pytest
from pydicom import Dataset
from pydicom.data import get_testdata_file

from dicomcore.dicomjson import element_at_path, to_dicom_json
from dicomcore.frames import FrameIndex
from dicomcore.instance import read_instance

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


def uri(path: str) -> str:
    return f"https://example.test/bulk/{path}"


def parsed(name: str):  # noqa: ANN201 - a ParsedInstance
    return read_instance(io.BytesIO(Path(str(get_testdata_file(name))).read_bytes()))


def nested_dataset() -> Dataset:
    """A document in the second item of a sequence, inside the first item of the same sequence."""
    inner = Dataset()
    inner.EncapsulatedDocument = b"%PDF" + b"x" * 3000
    item = Dataset()
    item.ContentSequence = [inner]
    dataset = Dataset()
    dataset.PatientID = "P1"
    dataset.ContentSequence = [Dataset(), item]
    return dataset


def test_pixel_data_is_bulk_data_and_small_values_are_inline() -> None:
    instance = parsed("CT_small.dcm")
    document = to_dicom_json(instance.dataset, uri, pixel_data=instance.frames)
    assert document["7FE00010"] == {"vr": "OW", "BulkDataURI": uri("7FE00010")}
    assert document["00280010"] == {"vr": "US", "Value": [128]}
    assert document["00100010"] == {"vr": "PN", "Value": [{"Alphabetic": "CompressedSamples^CT1"}]}
    assert not [key for key in document if key.startswith("0002")]
    assert list(document) == sorted(document)


def test_pixel_data_vr_follows_encoding() -> None:
    jpeg = parsed("JPEG2000.dcm")
    assert to_dicom_json(jpeg.dataset, uri, pixel_data=jpeg.frames)["7FE00010"]["vr"] == "OB"
    eight_bit = parsed("SC_rgb.dcm")
    assert to_dicom_json(eight_bit.dataset, uri, pixel_data=eight_bit.frames)["7FE00010"]["vr"] == "OB"
    dataset = Dataset()
    floats = FrameIndex("1.2.840.10008.1.2.1", 1, False, 500, 64, 64, None, pixel_data_tag=0x7FE00008)
    assert to_dicom_json(dataset, uri, pixel_data=floats) == {
        "7FE00008": {"vr": "OF", "BulkDataURI": uri("7FE00008")}
    }


def test_no_pixel_data_element_without_pixel_data() -> None:
    instance = parsed("rtplan.dcm")
    assert "7FE00010" not in to_dicom_json(instance.dataset, uri, pixel_data=instance.frames)


def test_threshold_counts_value_bytes() -> None:
    dataset = Dataset()
    dataset.EncapsulatedDocument = b"x" * 100
    inline = {"vr": "OB", "InlineBinary": base64.b64encode(b"x" * 100).decode()}
    assert to_dicom_json(dataset, uri, threshold=100)["00420011"] == inline
    bulk = {"vr": "OB", "BulkDataURI": uri("00420011")}
    assert to_dicom_json(dataset, uri, threshold=99)["00420011"] == bulk


def test_nested_bulk_data_path_format_and_round_trip() -> None:
    dataset = nested_dataset()
    paths: list[str] = []
    document = to_dicom_json(dataset, lambda path: paths.append(path) or uri(path))
    assert paths == ["0040A730/1/0040A730/0/00420011"]
    inner = document["0040A730"]["Value"][1]["0040A730"]["Value"][0]
    assert inner["00420011"] == {"vr": "OB", "BulkDataURI": uri("0040A730/1/0040A730/0/00420011")}
    assert document["0040A730"]["Value"][0] == {}
    element = element_at_path(dataset, paths[0])
    assert element.value == dataset.ContentSequence[1].ContentSequence[0].EncapsulatedDocument


def test_corpus_nested_waveform_round_trip() -> None:
    instance = parsed("waveform_ecg.dcm")
    paths: list[str] = []
    to_dicom_json(instance.dataset, lambda path: paths.append(path) or uri(path))
    assert "54000100/0/54001010" in paths
    element = element_at_path(instance.dataset, "54000100/0/54001010")
    assert element.value == instance.dataset.WaveformSequence[0].WaveformData


@pytest.mark.parametrize(
    "path",
    [
        "",
        "zz",
        "7FE00010",  # pixel data is not in the header; it is served from the frame index
        "0040A730",
        "0040A730/1",
        "0040A730/2/0040A730",
        "0040A730/x/0040A730",
        "0040A730/01/0040A730",
        "00100020/0/00100020",  # not a sequence
        "0040A730/1/0040A730/0/00420012",
    ],
)
def test_element_at_path_rejects_what_is_not_there(path: str) -> None:
    dataset = nested_dataset()
    if path == "0040A730":
        assert element_at_path(dataset, path).VR == "SQ"  # a whole sequence is an element too
        return
    with pytest.raises(KeyError):
        element_at_path(dataset, path)


def test_lowercase_hex_paths_resolve() -> None:
    dataset = nested_dataset()
    assert element_at_path(dataset, "0040a730/1/0040a730/0/00420011").VR == "OB"


def test_invalid_value_is_left_out_not_fatal() -> None:
    instance = parsed("badVR.dcm")  # Number of Frames "1A"
    document = to_dicom_json(instance.dataset, uri, pixel_data=instance.frames)
    assert "00280008" not in document
    assert document["00280010"]["Value"] == [10]
