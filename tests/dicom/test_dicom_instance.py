"""read_instance on damaged input: non-DICOM bodies and files cut short anywhere."""

from __future__ import annotations

import io
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path

import pydicom
import pytest
from pydicom.data import get_testdata_file
from pydicom.encaps import encapsulate
from pydicom.filereader import data_element_offset_to_value

from dicomcore.instance import InvalidInstanceError, read_instance

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


def corpus_bytes(name: str) -> bytes:
    return Path(str(get_testdata_file(name))).read_bytes()


def parse(data: bytes):  # noqa: ANN201 - a ParsedInstance
    return read_instance(io.BytesIO(data))


class CountingReader(io.BytesIO):
    """Counts the bytes read, to show that pixel data is skipped rather than read."""

    bytes_read = 0

    def read(self, size: int | None = -1, /) -> bytes:
        data = super().read(size)
        self.bytes_read += len(data)
        return data


@pytest.mark.parametrize(
    "body",
    [b"", b"hello", b"{}" * 100, b"\x00" * 128 + b"DICX" + b"\x00" * 100, b"%PDF-1.4\n" + b"x" * 300],
)
def test_non_dicom_body_is_rejected(body: bytes) -> None:
    with pytest.raises(InvalidInstanceError, match="not a DICOM Part 10 file: missing 'DICM' prefix"):
        parse(body)


def test_dicm_prefix_with_garbage_after_is_rejected() -> None:
    with pytest.raises(InvalidInstanceError):
        parse(b"\x00" * 128 + b"DICM" + b"\xff" * 50)


def test_pixel_data_is_skipped_not_read() -> None:
    data = corpus_bytes("RG1_UNCI.dcm")  # 7 MB of native pixel data
    reader = CountingReader(data)
    parsed = read_instance(reader)
    assert parsed.frames.locatable()
    assert reader.bytes_read < 10_000


@pytest.mark.parametrize(
    "name", ["CT_small.dcm", "MR_small_implicit.dcm", "MR_small_bigendian.dcm", "JPEG2000.dcm", "rtdose.dcm"]
)
def test_pydicom_leaves_the_reader_at_the_pixel_data_tag(name: str) -> None:
    # read_instance relies on this to find the Pixel Data element header without a search.
    data = corpus_bytes(name)
    reader = io.BytesIO(data)
    pydicom.dcmread(reader, stop_before_pixels=True)
    assert data[reader.tell() : reader.tell() + 4] in {b"\xe0\x7f\x10\x00", b"\x7f\xe0\x00\x10"}


def test_native_pixel_data_cut_short() -> None:
    data = corpus_bytes("CT_small.dcm")
    offset = parse(data).frames.pixel_data_offset
    assert offset is not None
    message = "truncated: Pixel Data declares 32768 bytes but the file ends after 1000"
    with pytest.raises(InvalidInstanceError, match=message):
        parse(data[: offset + 1000])


def encapsulated_cuts(data: bytes, fragments: tuple[tuple[tuple[int, int], ...], ...]) -> Iterator[int]:
    """Cut points inside every part of encapsulated pixel data."""
    for frame in fragments:
        for offset, length in frame:
            yield from (offset - 8, offset - 5, offset - 1, offset, offset + length // 2, offset + length)
    yield len(data) - 8  # just before the sequence delimiter
    yield len(data) - 5  # inside it


@pytest.mark.parametrize("name", ["emri_small_jpeg_2k_lossless.dcm", "SC_rgb_rle_2frame.dcm", "JPEG2000.dcm"])
def test_encapsulated_pixel_data_cut_short(name: str) -> None:
    data = corpus_bytes(name)
    index = parse(data).frames
    assert index.fragments is not None and index.pixel_data_offset is not None
    cuts = [index.pixel_data_offset, index.pixel_data_offset + 3, *encapsulated_cuts(data, index.fragments)]
    for cut in cuts:
        with pytest.raises(InvalidInstanceError, match="truncated"):
            parse(data[:cut])


def element_boundaries(data: bytes, pixel_data_offset: int | None) -> set[int]:
    """Offsets where a top-level element starts: cutting there leaves a shorter valid file."""
    dataset = pydicom.dcmread(io.BytesIO(data), stop_before_pixels=True)
    boundaries = set()
    if pixel_data_offset is not None:
        implicit = dataset.original_encoding[0]
        boundaries.add(pixel_data_offset - data_element_offset_to_value(implicit, "OB"))
    for group, implicit in ((dataset.file_meta, False), (dataset, dataset.original_encoding[0])):
        for element in group.elements():
            # Raw elements know where their value starts; converted ones (file meta) as file_tell.
            value_tell = getattr(element, "value_tell", None) or element.file_tell
            boundaries.add(value_tell - data_element_offset_to_value(implicit, element.VR))
    return boundaries


def header_cuts(boundaries: set[int], header_end: int) -> list[int]:
    """Every few bytes of the header, and every byte near the start of an element."""
    near_boundaries = {boundary + delta for boundary in boundaries for delta in range(-2, 14)}
    return sorted(cut for cut in set(range(132, header_end, 5)) | near_boundaries if 132 <= cut < header_end)


@pytest.mark.parametrize("name", ["CT_small.dcm", "rtplan.dcm", "MR_small_implicit.dcm"])
def test_header_cut_anywhere_but_between_elements_is_rejected(name: str) -> None:
    data = corpus_bytes(name)
    parsed = parse(data)
    header_end = parsed.frames.pixel_data_offset or len(data)
    boundaries = element_boundaries(data, parsed.frames.pixel_data_offset)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for cut in header_cuts(boundaries, header_end):
            if cut in boundaries:
                assert parse(data[:cut]).frames.number_of_frames == 0
                continue
            with pytest.raises(InvalidInstanceError):
                parse(data[:cut])


def test_missing_sequence_delimiter_is_truncation(make_encapsulated_file: Callable[..., bytes]) -> None:
    data = make_encapsulated_file(encapsulate([b"\xff\xd8\xff\xdb" + b"\x00" * 30 + b"\xff\xd9"]), 1)
    assert parse(data).frames.locatable()
    with pytest.raises(InvalidInstanceError, match="no sequence delimiter"):
        parse(data[:-8])


def test_instance_without_pixel_data() -> None:
    parsed = parse(corpus_bytes("rtplan.dcm"))
    index = parsed.frames
    assert (index.number_of_frames, index.pixel_data_offset, index.warning) == (0, None, None)
    assert not index.locatable()
    assert parsed.dataset.SOPInstanceUID
    assert parsed.transfer_syntax_uid == "1.2.840.10008.1.2"


def test_header_has_file_meta_and_no_pixel_data() -> None:
    parsed = parse(corpus_bytes("CT_small.dcm"))
    assert parsed.dataset.file_meta.TransferSyntaxUID == parsed.transfer_syntax_uid == "1.2.840.10008.1.2.1"
    assert "PixelData" not in parsed.dataset
    assert parsed.dataset.Rows == 128


def test_deflated_dataset_has_frames_but_no_offsets() -> None:
    parsed = parse(corpus_bytes("image_dfl.dcm"))
    assert parsed.frames.number_of_frames == 1
    assert parsed.frames.pixel_data_offset is None
    assert not parsed.frames.locatable()
    assert "deflated" in (parsed.frames.warning or "")
    assert "PixelData" not in parsed.dataset


def test_reading_from_bytes_finds_the_same_as_reading_a_file() -> None:
    """``read_instance_bytes`` skips the separate File Meta read only when the deflated
    syntax's UID is nowhere in the bytes: a deflated instance is still read as one (its
    inflated size checked first), and a bomb is still refused."""
    from dicomcore.instance import InstanceTooLargeError, read_instance_bytes
    from tests.support.builders import make_dataset, to_bytes
    from tests.support.hostile import deflate_bomb, deflated

    for data in (to_bytes(make_dataset(rows=8, columns=8, frames=2)), deflated(make_dataset(rows=8, columns=8))):
        from_bytes, from_file = read_instance_bytes(data), read_instance(io.BytesIO(data))
        assert from_bytes.transfer_syntax_uid == from_file.transfer_syntax_uid
        assert from_bytes.frames == from_file.frames and from_bytes.size == from_file.size == len(data)
        assert from_bytes.dataset == from_file.dataset
    from dicomcore import limits

    limits.configure(limits.ParseLimits(max_inflated_bytes=1 << 20))  # (conftest restores the defaults)
    bomb, _ = deflate_bomb(4 << 20)
    with pytest.raises(InstanceTooLargeError):
        read_instance_bytes(bomb)
