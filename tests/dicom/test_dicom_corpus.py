"""Every file of pydicom's and pydicom-data's test corpus: frames as pydicom sees them.

For each file: read_instance must either index it or reject it for a known reason. Every
frame must then come out byte for byte as pydicom gives it, through ranged reads when the
frames are locatable and through read_frame_fallback when they are not. The DICOM JSON of
the header must convert and its bulk data paths must resolve.
"""

from __future__ import annotations

import io
import json
import os
import re
from collections import Counter
from pathlib import Path

import pydicom
import pytest
from pydicom import Dataset
from pydicom.data import get_testdata_files
from pydicom.encaps import generate_frames
from pydicom.pixels.utils import get_expected_length, get_nr_frames

from dicomcore.dicomjson import element_at_path, to_dicom_json
from dicomcore.frames import FrameIndex
from dicomcore.instance import PIXEL_DATA_TAGS, InvalidInstanceError, read_frame_fallback, read_instance

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning", "ignore::DeprecationWarning")

CORPUS = sorted(path for path in get_testdata_files() if os.path.isfile(path))

# Files with a 'DICM' prefix that pydicom reads (it warns) but that are damaged.
KNOWN_INVALID = {
    "MR_truncated.dcm": "truncated: Pixel Data declares 8192 bytes but the file ends after 8130",
    "rtplan_truncated.dcm": "truncated: (300A,00B0) declares 976 bytes",
    "emri_small_jpeg_2k_lossless_too_short.dcm": "no sequence delimiter",
}
# Files with pixel data whose frames not even the fallback can tell apart.
NO_FRAMES = {
    "badVR.dcm": "invalid Number of Frames '1A'",
    "meta_missing_tsyntax.dcm": "Rows is missing",  # 2 bytes of Pixel Data, no Image Pixel module
    "nested_priv_SQ.dcm": "Rows is missing",
}


def corpus_id(path: str) -> str:
    return "/".join(Path(path).parts[-2:])


def has_dicm_prefix(data: bytes) -> bool:
    return data[128:132] == b"DICM"


def pydicom_frames(dataset: Dataset) -> list[bytes]:
    """The frames as pydicom itself splits them."""
    element = next(dataset[tag] for tag in PIXEL_DATA_TAGS if tag in dataset)
    count = get_nr_frames(dataset, warn=False)
    if element.is_undefined_length:
        tables = None
        if "ExtendedOffsetTable" in dataset:
            tables = (dataset.ExtendedOffsetTable, dataset.ExtendedOffsetTableLengths)
        return list(generate_frames(element.value, number_of_frames=count, extended_offsets=tables))[:count]
    size = get_expected_length(dataset, "bytes") // count
    return [element.value[i * size : (i + 1) * size] for i in range(count)]


def frames_by_ranges(data: bytes, index: FrameIndex) -> list[bytes]:
    result = []
    for number in range(1, index.number_of_frames + 1):
        start, end = index.frame_span(number)
        result.append(index.frame_from_span(number, data[start:end]))
    return result


def check_json(parsed_dataset: Dataset, index: FrameIndex) -> None:
    paths: list[str] = []

    def uri(path: str) -> str:
        paths.append(path)
        return f"bulk/{path}"

    document = to_dicom_json(parsed_dataset, uri, pixel_data=index)
    json.dumps(document)
    assert not any(key.startswith("0002") for key in document)
    for path in paths:
        if path in {f"{tag:08X}" for tag in PIXEL_DATA_TAGS}:
            continue  # served from the frame index, not the header
        assert len(element_at_path(parsed_dataset, path).value) > 1024


def classify(path: str) -> str:
    data = Path(path).read_bytes()
    try:
        index = read_instance(io.BytesIO(data)).frames
    except InvalidInstanceError:
        return "invalid"
    if index.number_of_frames == 0:
        return "no pixel data"
    return "locatable" if index.locatable() else "unlocatable"


@pytest.mark.parametrize("path", CORPUS, ids=corpus_id)
def test_corpus_file(path: str) -> None:
    name = Path(path).name
    data = Path(path).read_bytes()
    if not has_dicm_prefix(data):
        with pytest.raises(InvalidInstanceError, match="missing 'DICM' prefix"):
            read_instance(io.BytesIO(data))
        return
    if name in KNOWN_INVALID:
        with pytest.raises(InvalidInstanceError, match=re.escape(KNOWN_INVALID[name])):
            read_instance(io.BytesIO(data))
        return

    parsed = read_instance(io.BytesIO(data))
    index = parsed.frames
    assert parsed.size == len(data)
    assert not any(tag in parsed.dataset for tag in PIXEL_DATA_TAGS)
    assert FrameIndex.from_json(json.loads(json.dumps(index.to_json()))) == index
    check_json(parsed.dataset, index)

    full = pydicom.dcmread(io.BytesIO(data))
    has_pixels = any(tag in full for tag in PIXEL_DATA_TAGS)
    assert (index.number_of_frames > 0) == has_pixels
    if not has_pixels:
        return
    if name in NO_FRAMES:
        assert NO_FRAMES[name] in (index.warning or "")
        with pytest.raises(ValueError, match=NO_FRAMES[name]):
            read_frame_fallback(io.BytesIO(data), 1)
        return

    expected = pydicom_frames(full)
    assert index.number_of_frames == len(expected)
    if index.locatable():
        assert frames_by_ranges(data, index) == expected
    else:
        assert index.warning
        fallback = [read_frame_fallback(io.BytesIO(data), n) for n in range(1, index.number_of_frames + 1)]
        assert fallback == expected


def test_corpus_summary() -> None:
    counts = Counter(classify(path) for path in CORPUS)
    print(f"\ncorpus of {len(CORPUS)} files: {dict(counts)}")
    # Guards against a change that quietly makes frames unlocatable.
    assert counts["locatable"] >= 138
    assert counts["invalid"] == len(KNOWN_INVALID) + sum(
        not has_dicm_prefix(Path(path).read_bytes()) for path in CORPUS
    )
