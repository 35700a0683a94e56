"""The frame index: where each frame of an instance's Pixel Data lies in the stored file.

WADO-RS frame retrieval serves frames as stored, so once the index is known a frame is one
ranged read of the file (no DICOM parsing, no decoding). The index is computed once, when the
instance is stored, and kept as JSON next to the file.

Native (uncompressed) frames are arithmetic: frame *n* starts ``(n - 1) * frame_size`` bytes into
the Pixel Data value. Encapsulated frames (PS3.5 A.4) are lists of fragments: items of the Pixel
Data sequence, each an 8-byte item header (tag FFFE,E000 and a 4-byte length) then the value.
A frame is one or more consecutive fragments; which fragments belong to which frame comes from
the Extended Offset Table, the Basic Offset Table, the fragment count, or the codestream start
markers, in that order (:func:`locate_encapsulated_frames`).
"""

from __future__ import annotations

import math
import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from itertools import pairwise
from typing import Any

from pydicom import Dataset
from pydicom.uid import DeflatedExplicitVRLittleEndian, ExplicitVRLittleEndian

ITEM_HEADER_LENGTH = 8
"""Bytes of an item header in encapsulated Pixel Data: tag (FFFE,E000) and a 4-byte length."""

Fragment = tuple[int, int]
"""``(file offset of the fragment value, value length)``."""

# The first bytes of a fragment that begins a frame, for when no offset table tells where
# frames start. JPEG and JPEG-LS frames open with SOI (FFD8) followed by another marker;
# JPEG 2000 and HTJ2K codestreams with SOC then SIZ (FF4F FF51); some writers wrap J2K in the
# JP2 file format, whose first box is the 12-byte signature box. None of these can occur at the
# start of a continuation fragment: JPEG entropy-coded data stuffs every FF with 00 and JPEG 2000
# packet data never has FF followed by a byte above 8F.
_FRAME_START_SIGNATURES = (
    b"\xff\xd8\xff",
    b"\xff\x4f\xff\x51",
    b"\x00\x00\x00\x0cjP  \r\n\x87\n",
)
FRAME_START_PEEK = max(len(signature) for signature in _FRAME_START_SIGNATURES)
"""How many bytes of each fragment :func:`is_frame_start` needs to see."""


@dataclass(frozen=True)
class FrameIndex:
    """Where the frames of one stored instance are.

    Attributes
    ----------
    transfer_syntax_uid
        The file's transfer syntax.
    number_of_frames
        Frames in the Pixel Data; 0 when the instance has no pixel data.
    encapsulated
        Whether the Pixel Data is encapsulated (undefined length, a sequence of fragments).
    pixel_data_offset
        File offset of the Pixel Data value (the first byte after the element header);
        ``None`` if there is no pixel data or it has no place in the file (deflated datasets).
    pixel_data_length
        The value length; ``None`` for undefined length (encapsulated).
    frame_size
        Native only: bytes per frame, when that is a whole number.
    fragments
        Encapsulated only: per frame, the ``(file offset, length)`` of each fragment's value
        (after the item header); ``None`` when frames could not be located.
    warning
        Why frames could not be located; ``None`` when they could (or there are none).
    pixel_data_tag
        Which pixel data element the file has: (7FE0,0010) Pixel Data, (7FE0,0008) Float Pixel
        Data or (7FE0,0009) Double Float Pixel Data; ``None`` without pixel data.
    """

    transfer_syntax_uid: str
    number_of_frames: int
    encapsulated: bool
    pixel_data_offset: int | None
    pixel_data_length: int | None
    frame_size: int | None
    fragments: tuple[tuple[Fragment, ...], ...] | None
    warning: str | None = None
    pixel_data_tag: int | None = None

    def locatable(self) -> bool:
        """Whether every frame can be served by one ranged read (:meth:`frame_span`)."""
        if self.warning is not None or self.number_of_frames < 1:
            return False
        if self.encapsulated:
            return self.fragments is not None and len(self.fragments) == self.number_of_frames
        return self.pixel_data_offset is not None and self.frame_size is not None

    def frame_span(self, number: int) -> tuple[int, int]:
        """One contiguous file range, ``(start, end)`` with ``end`` exclusive, covering frame ``number``.

        Frames are numbered from 1, as in WADO-RS. A native frame's range is exact; an
        encapsulated frame's runs from its first fragment's value to its last fragment's value
        end, so it includes the item headers between fragments (:meth:`frame_from_span` strips
        them).

        Raises
        ------
        IndexError
            ``number`` is not a frame of this instance.
        ValueError
            Frames are not locatable (see :attr:`warning`); use the slow path instead.
        """
        self._check_frame_number(number)
        if self.encapsulated:
            assert self.fragments is not None  # guaranteed by locatable()
            fragments = self.fragments[number - 1]
            last_offset, last_length = fragments[-1]
            return fragments[0][0], last_offset + last_length
        assert self.pixel_data_offset is not None and self.frame_size is not None
        start = self.pixel_data_offset + (number - 1) * self.frame_size
        return start, start + self.frame_size

    def frame_from_span(self, number: int, span: bytes) -> bytes:
        """Frame ``number``'s bytes from the bytes of its :meth:`frame_span`.

        Raises
        ------
        ValueError
            ``span`` is not as long as the span (a short read, e.g. of a truncated file).
        """
        start, end = self.frame_span(number)
        if len(span) != end - start:
            raise ValueError(f"frame {number}: expected {end - start} bytes, got {len(span)}")
        if not self.encapsulated:
            return span
        assert self.fragments is not None
        fragments = self.fragments[number - 1]
        if len(fragments) == 1:
            return span
        return b"".join(span[offset - start : offset - start + length] for offset, length in fragments)

    def _check_frame_number(self, number: int) -> None:
        if not self.locatable():
            raise ValueError(f"frames are not locatable: {self.warning or 'no pixel data'}")
        if not 1 <= number <= self.number_of_frames:
            raise IndexError(f"frame {number} out of range 1-{self.number_of_frames}")

    def to_json(self) -> dict[str, Any]:
        """A compact JSON-able form: absent fields are left out, native frames are not listed.

        Each encapsulated frame is a flat list ``[offset, length, offset, length, ...]`` of its
        fragments, which keeps a many-frame index small.
        """
        data: dict[str, Any] = {
            "transfer_syntax_uid": self.transfer_syntax_uid,
            "number_of_frames": self.number_of_frames,
            "encapsulated": self.encapsulated,
        }
        optional = {
            "pixel_data_tag": self.pixel_data_tag,
            "pixel_data_offset": self.pixel_data_offset,
            "pixel_data_length": self.pixel_data_length,
            "frame_size": self.frame_size,
            "warning": self.warning,
        }
        data.update((key, value) for key, value in optional.items() if value is not None)
        if self.fragments is not None:
            data["fragments"] = [_flatten(frame) for frame in self.fragments]
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> FrameIndex:
        """The index :meth:`to_json` wrote."""
        fragments = data.get("fragments")
        return cls(
            transfer_syntax_uid=data["transfer_syntax_uid"],
            number_of_frames=data["number_of_frames"],
            encapsulated=data["encapsulated"],
            pixel_data_offset=data.get("pixel_data_offset"),
            pixel_data_length=data.get("pixel_data_length"),
            frame_size=data.get("frame_size"),
            fragments=None if fragments is None else tuple(_pairs(frame) for frame in fragments),
            warning=data.get("warning"),
            pixel_data_tag=data.get("pixel_data_tag"),
        )


def _flatten(fragments: Sequence[Fragment]) -> list[int]:
    return [number for fragment in fragments for number in fragment]


def _pairs(flat: Sequence[int]) -> tuple[Fragment, ...]:
    return tuple((flat[i], flat[i + 1]) for i in range(0, len(flat), 2))


def no_pixel_data(transfer_syntax_uid: str) -> FrameIndex:
    """The index of an instance without pixel data."""
    return FrameIndex(transfer_syntax_uid, 0, False, None, None, None, None)


def number_of_frames(dataset: Dataset) -> int:
    """(0028,0008) Number of Frames, 1 when absent, empty or 0 (as pydicom reads such files).

    Raises
    ------
    ValueError
        The value is not a whole number.
    """
    value = dataset.get("NumberOfFrames")
    if value is None or value == "":
        return 1
    try:
        frames = int(value)
    except (TypeError, ValueError):
        raise ValueError(f"invalid Number of Frames {value!r}") from None
    if frames < 0:
        raise ValueError(f"invalid Number of Frames {value!r}")
    return frames or 1


def native_frame_bits(dataset: Dataset) -> int:
    """Bits per native frame: Rows × Columns × Samples per Pixel × Bits Allocated.

    YBR_FULL_422 is the exception: native 4:2:2 data stores two luminance samples and one
    of each chrominance sample per pair of pixels (PS3.3 C.7.6.3.1.2), 2 samples a pixel.

    Raises
    ------
    ValueError
        An attribute needed for the size is missing or not positive.
    """
    values = {}
    for keyword in ("Rows", "Columns", "BitsAllocated"):
        value = dataset.get(keyword)
        if not isinstance(value, int) or value <= 0:
            raise ValueError(f"{keyword} is missing or invalid ({value!r})")
        values[keyword] = value
    samples = dataset.get("SamplesPerPixel", 1)
    if not isinstance(samples, int) or samples <= 0:
        raise ValueError(f"SamplesPerPixel is invalid ({samples!r})")
    pixels = values["Rows"] * values["Columns"]
    if dataset.get("PhotometricInterpretation") == "YBR_FULL_422":
        return pixels * 2 * values["BitsAllocated"]
    return pixels * samples * values["BitsAllocated"]


def native_frame_index(
    transfer_syntax_uid: str,
    dataset: Dataset,
    *,
    pixel_data_tag: int,
    offset: int | None,
    length: int,
) -> FrameIndex:
    """The index of native Pixel Data whose value (``length`` bytes) starts at file ``offset``.

    ``offset`` is ``None`` when the value has no place in the file (a deflated dataset).
    Big endian frames are located like little endian ones: their bytes are served as stored
    (labelled big endian) or swapped after the read (see :func:`frame_transfer_syntax`).
    """
    try:
        frames = number_of_frames(dataset)
        bits = native_frame_bits(dataset)
    except ValueError as exc:
        return FrameIndex(
            transfer_syntax_uid,
            1,
            False,
            offset,
            length,
            None,
            None,
            warning=f"frames cannot be located: {exc}",
            pixel_data_tag=pixel_data_tag,
        )
    frame_size = bits // 8 if bits % 8 == 0 else None
    if frames == 1:
        # A lone frame starts at the value's first byte, so partly used last bytes do not matter.
        frame_size = math.ceil(bits / 8)
    warning = _native_problem(frames, bits, length, offset)
    return FrameIndex(
        transfer_syntax_uid,
        frames,
        False,
        offset,
        length,
        frame_size,
        None,
        warning=warning,
        pixel_data_tag=pixel_data_tag,
    )


def _native_problem(frames: int, bits: int, length: int, offset: int | None) -> str | None:
    needed = math.ceil(frames * bits / 8)
    if offset is None:
        return "frames cannot be located: the dataset is deflated, so Pixel Data has no file offset"
    if bits % 8 and frames > 1:
        return f"frames cannot be located: frames of {bits} bits are not byte aligned"
    if length < needed:
        return f"frames cannot be located: Pixel Data holds {length} bytes but {frames} frames need {needed}"
    return None


def is_frame_start(head: bytes) -> bool:
    """Whether a fragment whose value starts with ``head`` starts a JPEG, JPEG-LS or JPEG 2000 frame.

    ``head`` should be :data:`FRAME_START_PEEK` bytes (fewer only if the fragment is shorter).
    """
    return head.startswith(_FRAME_START_SIGNATURES)


def locate_encapsulated_frames(
    fragments: Sequence[Fragment],
    frames: int,
    *,
    basic_offsets: Sequence[int],
    extended_offsets: Sequence[int] | None,
    peek: Callable[[Fragment], bytes],
) -> tuple[tuple[tuple[Fragment, ...], ...] | None, str | None]:
    """Split ``fragments`` into ``frames`` frames: ``(frames, None)`` or ``(None, warning)``.

    Offsets of both tables count from the first byte of the first fragment's item header.
    ``peek(fragment)`` returns the first :data:`FRAME_START_PEEK` bytes of a fragment's value;
    it is called only when no table locates the frames and there are more fragments than frames.
    """
    if not fragments:
        return None, f"frames cannot be located: Pixel Data has no fragments for {frames} frames"
    if frames == 1:
        return (tuple(fragments),), None
    for table in (extended_offsets, basic_offsets):
        if table:
            starts = _starts_from_offsets(fragments, table)
            if starts is not None and len(starts) == frames:
                return _split(fragments, starts), None
    if len(fragments) == frames:
        return tuple((fragment,) for fragment in fragments), None
    if len(fragments) > frames:
        starts = [i for i, fragment in enumerate(fragments) if is_frame_start(peek(fragment))]
        if len(starts) == frames and starts[0] == 0:
            return _split(fragments, starts), None
    tables = "an unusable offset table" if extended_offsets or basic_offsets else "no offset table"
    return None, f"frames cannot be located: {len(fragments)} fragments, {frames} frames and {tables}"


def _starts_from_offsets(fragments: Sequence[Fragment], offsets: Sequence[int]) -> list[int] | None:
    """The index of the first fragment of each frame, or ``None`` if an offset is not a fragment's."""
    first_item = fragments[0][0] - ITEM_HEADER_LENGTH
    index_at = {offset - ITEM_HEADER_LENGTH - first_item: i for i, (offset, _) in enumerate(fragments)}
    starts = []
    for offset in offsets:
        index = index_at.get(offset)
        if index is None:
            return None
        starts.append(index)
    if starts[0] != 0 or any(a >= b for a, b in pairwise(starts)):
        return None
    return starts


def _split(fragments: Sequence[Fragment], starts: Sequence[int]) -> tuple[tuple[Fragment, ...], ...]:
    bounds = [*starts, len(fragments)]
    return tuple(tuple(fragments[a:b]) for a, b in pairwise(bounds))


def unpack_extended_offsets(value: bytes) -> list[int]:
    """The offsets of (7FE0,0001) Extended Offset Table: 64-bit little endian (VR OV)."""
    return list(struct.unpack(f"<{len(value) // 8}Q", value[: len(value) // 8 * 8]))


def frame_transfer_syntax(stored: str) -> str:
    """The transfer syntax a stored frame's bytes are in, once read.

    Deflate compresses the whole dataset, not the frames: a deflated instance's frames are
    read inflated, so they are Explicit VR Little Endian bytes. Every other syntax is the
    frames' own (big endian frames are served as stored bytes, or swapped on request).
    """
    return ExplicitVRLittleEndian if stored == DeflatedExplicitVRLittleEndian else stored
