"""The frame index: spans, JSON, and frame location in synthetic encapsulated and native files."""

from __future__ import annotations

import io
import struct
from collections.abc import Callable

import numpy as np
import pytest
from pydicom.encaps import encapsulate, encapsulate_extended, parse_basic_offsets
from pydicom.pixels.utils import pack_bits

from dicomcore.frames import FrameIndex
from dicomcore.instance import read_frame_fallback, read_instance


def frames_via_spans(data: bytes, index: FrameIndex) -> list[bytes]:
    result = []
    for number in range(1, index.number_of_frames + 1):
        start, end = index.frame_span(number)
        result.append(index.frame_from_span(number, data[start:end]))
    return result


def parse(data: bytes) -> FrameIndex:
    return read_instance(io.BytesIO(data)).frames


JPEG = "1.2.840.10008.1.2.4.50"
EXPLICIT = "1.2.840.10008.1.2.1"
TWO_FRAMES = (((100, 10), (118, 5)), ((131, 4),))
UNLOCATED = "frames cannot be located"


def test_native_index_is_arithmetic() -> None:
    index = FrameIndex(EXPLICIT, 3, False, 1000, 300, 100, None, pixel_data_tag=0x7FE00010)
    assert index.locatable()
    assert index.frame_span(1) == (1000, 1100)
    assert index.frame_span(3) == (1200, 1300)
    assert index.frame_from_span(2, b"x" * 100) == b"x" * 100
    for bad in (0, 4, -1):
        with pytest.raises(IndexError):
            index.frame_span(bad)
    with pytest.raises(ValueError, match="expected 100 bytes"):
        index.frame_from_span(1, b"short")


def test_encapsulated_span_covers_item_headers_between_fragments() -> None:
    # Frame 1: fragments at 100 (10 bytes) and 118 (5 bytes; its item header is 110-117).
    index = FrameIndex(JPEG, 2, True, 80, None, None, TWO_FRAMES)
    assert index.frame_span(1) == (100, 123)
    span = b"A" * 10 + b"\xfe\xff\x00\xe0\x05\x00\x00\x00" + b"B" * 5
    assert index.frame_from_span(1, span) == b"A" * 10 + b"B" * 5
    assert index.frame_span(2) == (131, 135)


def test_unlocatable_index_refuses_spans() -> None:
    index = FrameIndex(JPEG, 5, True, 80, None, None, None, warning=UNLOCATED)
    assert not index.locatable()
    with pytest.raises(ValueError, match="not locatable"):
        index.frame_span(1)


@pytest.mark.parametrize(
    "index",
    [
        FrameIndex(EXPLICIT, 0, False, None, None, None, None),
        FrameIndex(EXPLICIT, 1000, False, 1234, 1000 * 512, 512, None, pixel_data_tag=0x7FE00010),
        FrameIndex(JPEG, 2, True, 80, None, None, TWO_FRAMES),
        FrameIndex(JPEG, 5, True, 80, None, None, None, warning=UNLOCATED),
    ],
)
def test_json_round_trip(index: FrameIndex) -> None:
    data = index.to_json()
    assert FrameIndex.from_json(data) == index
    if not index.encapsulated:
        assert "fragments" not in data  # native frames are not listed


def test_empty_bot_several_fragments_per_frame_split_at_start_markers(
    make_fake_frames: Callable[..., list[bytes]], make_encapsulated_file: Callable[..., bytes]
) -> None:
    frames = make_fake_frames(4)
    data = make_encapsulated_file(encapsulate(frames, fragments_per_frame=3, has_bot=False), 4)
    index = parse(data)
    assert index.locatable(), index.warning
    assert [len(frame) for frame in index.fragments or ()] == [3, 3, 3, 3]
    assert frames_via_spans(data, index) == frames


def test_empty_bot_without_start_markers_is_unlocatable_but_served_by_fallback(
    make_fake_frames: Callable[..., list[bytes]], make_encapsulated_file: Callable[..., bytes]
) -> None:
    frames = make_fake_frames(4, markers=False)
    data = make_encapsulated_file(encapsulate(frames, fragments_per_frame=3, has_bot=False), 4)
    index = parse(data)
    assert not index.locatable()
    assert index.warning == "frames cannot be located: 12 fragments, 4 frames and no offset table"
    assert index.fragments is None
    # pydicom splits at the JPEG end-of-image markers the frames still have.
    assert [read_frame_fallback(io.BytesIO(data), n) for n in range(1, 5)] == frames


def test_basic_offset_table_locates_multi_fragment_frames(
    make_fake_frames: Callable[..., list[bytes]], make_encapsulated_file: Callable[..., bytes]
) -> None:
    # No start markers, so only the table can tell where frames begin.
    frames = make_fake_frames(3, markers=False)
    data = make_encapsulated_file(encapsulate(frames, fragments_per_frame=2, has_bot=True), 3)
    index = parse(data)
    assert index.locatable(), index.warning
    assert frames_via_spans(data, index) == frames


def test_extended_offset_table_one_fragment_per_frame(
    make_fake_frames: Callable[..., list[bytes]], make_encapsulated_file: Callable[..., bytes]
) -> None:
    frames = make_fake_frames(5)
    value, offsets, lengths = encapsulate_extended(frames)
    data = make_encapsulated_file(value, 5, ExtendedOffsetTable=offsets, ExtendedOffsetTableLengths=lengths)
    index = parse(data)
    assert index.locatable(), index.warning
    assert frames_via_spans(data, index) == frames


def test_extended_offset_table_is_used_before_anything_else(
    make_fake_frames: Callable[..., list[bytes]], make_encapsulated_file: Callable[..., bytes]
) -> None:
    # Two fragments a frame, no start markers and an empty BOT: only the EOT can locate frames.
    frames = make_fake_frames(3, markers=False)
    offsets = parse_basic_offsets(encapsulate(frames, fragments_per_frame=2, has_bot=True))
    table = struct.pack("<3Q", *offsets)
    table_lengths = struct.pack("<3Q", *(len(frame) for frame in frames))
    value = encapsulate(frames, fragments_per_frame=2, has_bot=False)
    tables = {"ExtendedOffsetTable": table, "ExtendedOffsetTableLengths": table_lengths}
    data = make_encapsulated_file(value, 3, **tables)
    index = parse(data)
    assert index.locatable(), index.warning
    assert frames_via_spans(data, index) == frames


def test_bad_basic_offset_table_falls_back_to_fragment_count(
    make_fake_frames: Callable[..., list[bytes]], make_encapsulated_file: Callable[..., bytes]
) -> None:
    frames = make_fake_frames(2, markers=False)
    value = bytearray(encapsulate(frames, fragments_per_frame=1, has_bot=True))
    value[12:16] = struct.pack("<L", 7)  # the second offset points into a fragment
    data = make_encapsulated_file(bytes(value), 2)
    index = parse(data)
    assert index.locatable(), index.warning
    assert frames_via_spans(data, index) == frames


def test_one_frame_is_all_fragments(
    make_fake_frames: Callable[..., list[bytes]], make_encapsulated_file: Callable[..., bytes]
) -> None:
    frames = make_fake_frames(1, markers=False)
    data = make_encapsulated_file(encapsulate(frames, fragments_per_frame=4, has_bot=False), 1)
    index = parse(data)
    assert frames_via_spans(data, index) == frames


def test_native_frames(make_native_file: Callable[..., bytes]) -> None:
    pixels = bytes(range(256)) * 6  # 3 frames of 16 x 16 at 16 bits
    data = make_native_file(pixels, rows=16, columns=16, frames=3, bits=16)
    parsed = read_instance(io.BytesIO(data))
    index = parsed.frames
    assert (index.frame_size, index.pixel_data_length, index.number_of_frames) == (512, 1536, 3)
    assert data[index.pixel_data_offset : index.pixel_data_offset + 1536] == pixels
    assert frames_via_spans(data, index) == [pixels[:512], pixels[512:1024], pixels[1024:]]
    assert "PixelData" not in parsed.dataset
    assert parsed.size == len(data)


def test_one_bit_frames_off_byte_boundaries_use_the_fallback(make_native_file: Callable[..., bytes]) -> None:
    # 3 x 3 pixels at 1 bit: 9 bits a frame, so frame 2 starts at bit 1 of byte 1.
    frames = [[1, 0, 1, 1, 0, 0, 1, 1, 1], [0, 1, 0, 0, 1, 0, 1, 1, 0], [1, 1, 1, 0, 0, 0, 0, 1, 1]]
    bits = np.array(frames, np.uint8).ravel()
    data = make_native_file(pack_bits(bits), rows=3, columns=3, frames=3, bits=1)
    index = parse(data)
    assert not index.locatable()
    assert "not byte aligned" in (index.warning or "")
    for number in (1, 2, 3):
        expected = pack_bits(bits[(number - 1) * 9 : number * 9])
        assert read_frame_fallback(io.BytesIO(data), number) == expected
    with pytest.raises(IndexError):
        read_frame_fallback(io.BytesIO(data), 4)


def test_one_bit_frames_on_byte_boundaries_are_locatable(make_native_file: Callable[..., bytes]) -> None:
    bits = np.arange(2 * 64, dtype=np.uint8) % 3 == 0
    data = make_native_file(pack_bits(bits.astype(np.uint8)), rows=8, columns=8, frames=2, bits=1)
    index = parse(data)
    assert index.locatable() and index.frame_size == 8
    assert frames_via_spans(data, index) == [pack_bits(bits[:64]), pack_bits(bits[64:])]
