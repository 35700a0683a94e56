"""Parse a stored DICOM Part 10 file cheaply: the header, and where each frame of its pixel data is.

The reader may be a local file or a wrapper doing ranged reads on a cloud blob, and a file
may be many gigabytes, so :func:`read_instance` reads only the header (through pydicom), the
Pixel Data element header, and for encapsulated data the 8-byte item headers, seeking over
every value. The pixel data itself is never read.
"""

from __future__ import annotations

import io
import re
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import pairwise
from typing import BinaryIO, cast

import numpy
import pydicom
from pydicom import Dataset
from pydicom.dataelem import RawDataElement
from pydicom.encaps import get_frame, parse_basic_offsets, parse_fragments
from pydicom.pixels.utils import pack_bits, unpack_bits
from pydicom.tag import BaseTag
from pydicom.uid import UID, DeflatedExplicitVRLittleEndian
from pydicom.valuerep import EXPLICIT_VR_LENGTH_32

from dicomcore import frames as fr
from dicomcore import limits
from dicomcore.frames import FrameIndex

PIXEL_DATA_TAGS = (0x7FE00010, 0x7FE00008, 0x7FE00009)
"""Pixel Data, Float Pixel Data, Double Float Pixel Data: an image has at most one of them."""

_PREAMBLE_LENGTH = 128
_UNDEFINED_LENGTH = 0xFFFFFFFF
_ITEM_LENGTH = struct.Struct("<L")
_SEQUENCE_DELIMITER = b"\xfe\xff\xdd\xe0"  # (FFFE,E0DD) little endian; encapsulated data is always LE
_NATIVE_SYNTAXES = {
    "1.2.840.10008.1.2",
    "1.2.840.10008.1.2.1",
    "1.2.840.10008.1.2.2",
    "1.2.840.10008.1.2.1.99",
}
# MPEG-2, MPEG-4 AVC/H.264 and HEVC/H.265: the fragments hold one video stream, not frames.
_VIDEO_SYNTAX = re.compile(r"1\.2\.840\.10008\.1\.2\.4\.10[0-8](?:\.1)?")


class InvalidInstanceError(ValueError):
    """The file is not a readable DICOM Part 10 instance; the message names the problem."""


class InstanceTooLargeError(InvalidInstanceError):
    """Reading the file would pass a parsing limit (:mod:`dicomcore.limits`)."""


@dataclass
class ParsedInstance:
    """What :func:`read_instance` learnt of a stored file.

    Attributes
    ----------
    dataset
        Every element before the pixel data, with ``file_meta``; no pixel data, and nothing
        after it (such as Data Set Trailing Padding).
    transfer_syntax_uid
        From the File Meta Information, or as pydicom inferred it when that lacks one.
    frames
        Where each frame lies in the file.
    size
        The file size in bytes.
    """

    dataset: Dataset
    transfer_syntax_uid: str
    frames: FrameIndex
    size: int


def read_instance(fp: BinaryIO) -> ParsedInstance:
    """Parse the header of the Part 10 file in ``fp`` and index its frames.

    ``fp`` is a seekable binary reader. Only what is needed is read: the header, the Pixel
    Data element header and the item headers of encapsulated fragments (plus the first few
    bytes of each fragment when frames must be found by their start markers).

    Raises
    ------
    InvalidInstanceError
        Not a Part 10 file (no 'DICM' prefix), not parseable, or truncated.
    """
    return _read(fp, may_be_deflated=True)


def read_instance_bytes(data: bytes) -> ParsedInstance:
    """:func:`read_instance` of a whole instance in memory (a STOW part).

    The deflated transfer syntax can only be named by its UID, literally, in the File Meta
    Information, so where those bytes occur nowhere in ``data`` (one search at C speed) the
    instance is not deflated and the separate File Meta read that looks for it is skipped:
    it parsed group 0002 a second time, ~0.2 ms per instance.
    """
    return _read(io.BytesIO(data), may_be_deflated=DeflatedExplicitVRLittleEndian.encode() in data)


def _read(fp: BinaryIO, *, may_be_deflated: bool) -> ParsedInstance:
    size = _file_size(fp)
    has_preamble = _check_prefix(fp)
    if may_be_deflated and _deflated_from(fp, has_preamble) is not None:  # before pydicom would inflate it whole
        dataset, index = _read_deflated(fp, DeflatedExplicitVRLittleEndian)
        return ParsedInstance(dataset, DeflatedExplicitVRLittleEndian, index, size)
    reader = _ReadTracker(fp, limits.current().max_header_bytes)
    dataset = _read_header(reader, force=not has_preamble)
    transfer_syntax = _transfer_syntax(dataset)
    position = reader.tell()
    if position >= size:
        _check_header_complete(fp, dataset, reader, size)
        return ParsedInstance(dataset, transfer_syntax, fr.no_pixel_data(transfer_syntax), size)
    index = _index_pixel_data(fp, dataset, transfer_syntax, position, size)
    return ParsedInstance(dataset, transfer_syntax, index, size)


def read_frame_fallback(fp: BinaryIO, number: int) -> bytes:
    """Frame ``number`` (from 1) as stored, by reading the whole file with pydicom.

    The slow path for files whose frames :func:`read_instance` could not locate. Encapsulated
    frames are pydicom's (which also splits at JPEG end-of-image markers); native 1-bit frames
    that do not start on a byte boundary are repacked to start at bit 0.

    Raises
    ------
    IndexError
        No such frame, or no pixel data.
    ValueError
        The frames cannot be told apart (e.g. an invalid Number of Frames);
        :class:`InvalidInstanceError` if the file cannot be read.
    """
    fp.seek(0)
    _check_deflated_size(fp)
    try:
        dataset = pydicom.dcmread(fp)
    except Exception as exc:  # pydicom reports malformed input with many exception types
        raise InvalidInstanceError(f"not a readable DICOM file: {type(exc).__name__}: {exc}") from exc
    tag = next((tag for tag in PIXEL_DATA_TAGS if tag in dataset), None)
    if tag is None:
        raise IndexError(f"frame {number}: the instance has no pixel data")
    element = dataset[tag]
    frames = fr.number_of_frames(dataset)
    if not 1 <= number <= frames:
        raise IndexError(f"frame {number} out of range 1-{frames}")
    if element.is_undefined_length:
        return get_frame(
            element.value, number - 1, number_of_frames=frames, extended_offsets=_extended_table(dataset)
        )
    return _native_frame(element.value, dataset, number, frames)


def _native_frame(value: bytes, dataset: Dataset, number: int, frames: int) -> bytes:
    bits = fr.native_frame_bits(dataset)
    if bits % 8 == 0 or frames == 1:
        size = -(-bits // 8)
        return value[(number - 1) * size : number * size]
    # 1-bit frames sharing bytes with their neighbours: take the frame's bits and pack them
    # again so the frame stands alone, as a frame of its own file would be stored.
    bits_of_all = numpy.asarray(unpack_bits(bytes(value)))
    return pack_bits(bits_of_all[(number - 1) * bits : number * bits])


class _ReadTracker:
    """Passes reads through to ``fp``, noting whether any came back partly filled.

    pydicom stops quietly when a read comes back short at the end of the file, so a file cut
    inside an element header reads as a shorter, complete file. A complete file ends where an
    element ends, so there every read returns all it asked for or nothing at all. (The one
    exception, pydicom scanning a malformed undefined-length value for its delimiter right
    up to the end of a file without pixel data, is rare enough to be rejected too.)
    """

    def __init__(self, fp: BinaryIO, max_bytes: int) -> None:
        self._fp = fp
        self.max_bytes = max_bytes
        self.partial_read = False

    def read(self, size: int | None = -1) -> bytes:
        if size is None or size < 0 or self._fp.tell() + size > self.max_bytes:
            # Checked before reading: pydicom reads each value whole into memory.
            raise InstanceTooLargeError(
                f"the DICOM header is larger than {self.max_bytes} bytes (DICOMWEB_MAX_HEADER_BYTES)")
        data = self._fp.read(size)
        if size is not None and 0 < len(data) < size:
            self.partial_read = True
        return data

    def seek(self, offset: int, whence: int = 0) -> int:
        return self._fp.seek(offset, whence)

    def tell(self) -> int:
        return self._fp.tell()


def _file_size(fp: BinaryIO) -> int:
    size = fp.seek(0, 2)
    fp.seek(0)
    return size


def _check_prefix(fp: BinaryIO) -> bool:
    """True for a preamble and 'DICM'; False for File Meta Information with no preamble.

    Real clients send the latter: dicomweb-client encodes datasets it did not read from a
    file with ``pydicom.dcmwrite`` and no preamble. The File Meta group (0002) is still
    required, since without it the transfer syntax would be a guess.
    """
    fp.seek(_PREAMBLE_LENGTH)
    prefixed = fp.read(4) == b"DICM"
    fp.seek(0)
    if prefixed:
        return True
    # Group 0002, little endian, as File Meta Information always is (PS3.10 7.1).
    if fp.read(2) == b"\x02\x00":
        fp.seek(0)
        return False
    raise InvalidInstanceError(
        "not a DICOM Part 10 file: missing 'DICM' prefix (and no File Meta Information at the start)")


def _deflated_from(fp: BinaryIO, has_preamble: bool) -> int | None:
    """Where the deflate stream starts when the File Meta Information names the Deflated
    transfer syntax, else ``None``. Reads the File Meta group alone."""
    if _meta_group_lacks_deflated(fp, has_preamble):
        return None
    fp.seek(0)
    capped = cast(BinaryIO, _ReadTracker(fp, limits.current().max_header_bytes))
    try:
        pydicom.filereader.read_preamble(capped, not has_preamble)
        meta = pydicom.filereader._read_file_meta_info(capped)  # the one reader of group 0002 alone
    except Exception:  # not readable (or too large): the full read below names the problem
        fp.seek(0)
        return None
    start = fp.tell()
    fp.seek(0)
    return start if meta.get("TransferSyntaxUID") == DeflatedExplicitVRLittleEndian else None


_DEFLATED_UID = DeflatedExplicitVRLittleEndian.encode()
_LONG_VRS = {b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"UC", b"UN", b"UR", b"UT", b"SV", b"UV"}
"""Explicit VRs whose value length takes 4 bytes after 2 reserved ones (PS3.5 7.1.2)."""


def _meta_group_lacks_deflated(fp: BinaryIO, has_preamble: bool) -> bool:
    """True when the raw bytes of the File Meta group (group 0002, explicit VR little endian
    by PS3.10 7.1) do not even contain the Deflated transfer syntax's UID: then the group
    cannot name it, and pydicom's read of the group, which builds a Dataset (a tenth of a
    small file's parse), is not needed. The group is walked element by element, as pydicom
    reads it (until the first element of another group), not taken from its Group Length,
    which a file may misstate. ``False`` when in doubt (an odd VR, an undefined length, past
    the header limit): the caller then reads the group with pydicom."""
    start = _PREAMBLE_LENGTH + 4 if has_preamble else 0
    limit = limits.current().max_header_bytes
    fp.seek(start)
    try:
        chunks: list[bytes] = []
        position = start
        while True:
            head = fp.read(8)
            if len(head) < 8 or head[:2] != b"\x02\x00":
                return _DEFLATED_UID not in b"".join(chunks)
            vr = head[4:6]
            if not vr.isalpha() or not vr.isupper():
                return False
            if vr in _LONG_VRS:
                extra = fp.read(4)
                if len(extra) < 4:
                    return False
                length, header = int.from_bytes(extra, "little"), 12
            else:
                length, header = int.from_bytes(head[6:8], "little"), 8
            position += header + length
            if length == 0xFFFFFFFF or position > limit:
                return False
            chunks.append(fp.read(length))
    finally:
        fp.seek(0)


def _check_deflated_size(fp: BinaryIO) -> None:
    """Raise :class:`InstanceTooLargeError` when ``fp`` is a deflated dataset that inflates
    past the limit (memory stays at one chunk while checking)."""
    start = _deflated_from(fp, has_preamble=_has_preamble(fp))
    if start is None:
        return
    try:
        limits.check_inflated_size(fp, start, limits.current().max_inflated_bytes)
    except limits.LimitExceededError as exc:
        raise InstanceTooLargeError(str(exc)) from exc
    except ValueError as exc:
        raise InvalidInstanceError(str(exc)) from exc
    finally:
        fp.seek(0)


def _has_preamble(fp: BinaryIO) -> bool:
    fp.seek(_PREAMBLE_LENGTH)
    prefixed = fp.read(4) == b"DICM"
    fp.seek(0)
    return prefixed


def check_readable_size(fp: BinaryIO) -> None:
    """Raise :class:`InstanceTooLargeError` when reading ``fp`` whole with pydicom would pass
    a parsing limit (today: a deflated dataset inflating past ``max_inflated_bytes``)."""
    _check_deflated_size(fp)


def _read_header(reader: _ReadTracker, *, force: bool = False) -> Dataset:
    try:
        dataset = pydicom.dcmread(cast(BinaryIO, reader), stop_before_pixels=True, force=force)
    except InvalidInstanceError:
        raise
    except Exception as exc:  # pydicom reports malformed input with many exception types
        raise InvalidInstanceError(f"not a readable DICOM file: {type(exc).__name__}: {exc}") from exc
    # The dataset would otherwise keep the reader (maybe a network connection) alive.
    dataset.buffer = None
    return dataset


def _transfer_syntax(dataset: Dataset) -> str:
    value = dataset.file_meta.get("TransferSyntaxUID")
    if value:
        return str(value)
    # pydicom guessed the encoding from the first element; name it as a transfer syntax.
    implicit, little = dataset.original_encoding
    if implicit:
        return pydicom.uid.ImplicitVRLittleEndian
    return pydicom.uid.ExplicitVRLittleEndian if little else pydicom.uid.ExplicitVRBigEndian


def _check_header_complete(fp: BinaryIO, dataset: Dataset, reader: _ReadTracker, size: int) -> None:
    """Raise if a file without pixel data ends inside an element rather than after one."""
    # Values that run past the end were read short without complaint. Only the top level can
    # hide this: a short value inside a sequence of undefined length leaves the sequence without
    # its delimiter, which pydicom does report, and one inside a sequence of defined length
    # makes the top-level sequence short.
    for tag, value_offset, length in _top_level_lengths(fp, dataset):
        if value_offset + length > size:
            raise InvalidInstanceError(
                f"truncated: {tag} declares {length} bytes but the file ends after {size - value_offset}"
            )
    if reader.partial_read:
        raise InvalidInstanceError("truncated: the file ends inside a data element header")


def _top_level_lengths(fp: BinaryIO, dataset: Dataset) -> Iterator[tuple[BaseTag, int, int]]:
    """``(tag, value offset, declared length)`` of each top-level element of defined length."""
    for group in (dataset.file_meta, dataset):
        implicit, little = group.original_encoding
        for element in group.elements():
            if isinstance(element, RawDataElement):
                if element.length != _UNDEFINED_LENGTH:
                    yield element.tag, element.value_tell, element.length
            elif not element.is_undefined_length and element.file_tell is not None:
                # pydicom has already converted it and dropped the length; read it again.
                length = _length_before_value(fp, element.file_tell, element.VR, bool(implicit), bool(little))
                yield element.tag, element.file_tell, length


def _length_before_value(fp: BinaryIO, value_offset: int, vr: str, implicit: bool, little: bool) -> int:
    # The length field is the last part of the element header (see _read_element_header).
    width = 4 if implicit or vr in EXPLICIT_VR_LENGTH_32 else 2
    fp.seek(value_offset - width)
    return int.from_bytes(fp.read(width), "little" if little else "big")


def _read_deflated(fp: BinaryIO, transfer_syntax: str) -> tuple[Dataset, FrameIndex]:
    # The dataset is one deflate stream, so its pixel data has no file offset and nothing can be
    # skipped: read it all (pydicom inflates the whole stream even to stop before pixels),
    # once its inflated size is known to be within the limit.
    fp.seek(0)
    _check_deflated_size(fp)
    dataset = _read_full(fp)
    tag = next((tag for tag in PIXEL_DATA_TAGS if tag in dataset), None)
    if tag is None:
        return dataset, fr.no_pixel_data(transfer_syntax)
    length = len(dataset[tag].value)
    del dataset[tag]
    index = fr.native_frame_index(
        transfer_syntax, dataset, pixel_data_tag=tag, offset=None, length=length
    )
    return dataset, index


def _read_full(fp: BinaryIO) -> Dataset:
    try:
        dataset = pydicom.dcmread(fp)
    except Exception as exc:  # pydicom reports malformed input with many exception types
        raise InvalidInstanceError(f"not a readable DICOM file: {type(exc).__name__}: {exc}") from exc
    dataset.buffer = None
    return dataset


@dataclass(frozen=True)
class _ElementHeader:
    tag: int
    value_offset: int
    length: int


def _read_element_header(fp: BinaryIO, position: int, implicit: bool, little: bool) -> _ElementHeader:
    """The header of the data element at ``position``, which pydicom left us at.

    Layouts (PS3.5 §7.1), integers in the transfer syntax's byte order:

    * Implicit VR:                  group (2) | element (2) | length (4)              = 8 bytes
    * Explicit VR, OB/OW/OF/OD/UN…: group (2) | element (2) | VR (2) | 0000 (2) | length (4) = 12
    * Explicit VR, other VRs:       group (2) | element (2) | VR (2) | length (2)     = 8 bytes

    The last is never valid for pixel data but is accepted as pydicom accepts it.
    """
    fp.seek(position)
    head = fp.read(12)
    if len(head) < 8:
        raise InvalidInstanceError(f"truncated: the file ends inside a data element header at {position}")
    order = "<" if little else ">"
    group, element = struct.unpack(f"{order}HH", head[:4])
    vr = head[4:6]
    # Like pydicom, treat bytes that cannot be a VR as implicit VR (some writers switch).
    if implicit or not b"AA" <= vr <= b"ZZ":
        (length,) = struct.unpack(f"{order}L", head[4:8])
        return _ElementHeader(group << 16 | element, position + 8, length)
    if vr.decode("ascii") in EXPLICIT_VR_LENGTH_32:
        if len(head) < 12:
            raise InvalidInstanceError(f"truncated: the file ends inside a data element header at {position}")
        (length,) = struct.unpack(f"{order}L", head[8:12])
        return _ElementHeader(group << 16 | element, position + 12, length)
    (length,) = struct.unpack(f"{order}H", head[6:8])
    return _ElementHeader(group << 16 | element, position + 8, length)


def _index_pixel_data(
    fp: BinaryIO, dataset: Dataset, transfer_syntax: str, position: int, size: int
) -> FrameIndex:
    implicit, little = dataset.original_encoding
    header = _read_element_header(fp, position, bool(implicit), bool(little))
    if header.tag not in PIXEL_DATA_TAGS:
        # pydicom only stops early at pixel data; anything else means it gave up silently.
        raise InvalidInstanceError(f"could not parse the dataset past offset {position}")
    if header.length == _UNDEFINED_LENGTH:
        return _index_encapsulated(fp, dataset, transfer_syntax, header, size)
    available = size - header.value_offset
    if header.length > available:
        raise InvalidInstanceError(
            f"truncated: Pixel Data declares {header.length} bytes but the file ends after {available}"
        )
    index = fr.native_frame_index(
        transfer_syntax,
        dataset,
        pixel_data_tag=header.tag,
        offset=header.value_offset,
        length=header.length,
    )
    if index.warning is None and _is_encapsulated_syntax(transfer_syntax):
        return _with_warning(index, "native Pixel Data in an encapsulated transfer syntax")
    return index


def _is_encapsulated_syntax(transfer_syntax: str) -> bool:
    uid = UID(transfer_syntax)
    return uid.is_transfer_syntax and uid.is_encapsulated


def _with_warning(index: FrameIndex, problem: str) -> FrameIndex:
    return FrameIndex(
        index.transfer_syntax_uid,
        index.number_of_frames,
        index.encapsulated,
        index.pixel_data_offset,
        index.pixel_data_length,
        index.frame_size,
        None,
        warning=f"frames cannot be located: {problem}",
        pixel_data_tag=index.pixel_data_tag,
    )


def _index_encapsulated(
    fp: BinaryIO, dataset: Dataset, transfer_syntax: str, header: _ElementHeader, size: int
) -> FrameIndex:
    basic_offsets, fragments = _walk_fragments(fp, header.value_offset, size)
    warning: str | None
    try:
        frames = fr.number_of_frames(dataset)
    except ValueError as exc:
        frames, located, warning = 1, None, f"frames cannot be located: {exc}"
    else:
        located, warning = fr.locate_encapsulated_frames(
            fragments,
            frames,
            basic_offsets=basic_offsets,
            extended_offsets=_extended_offsets(dataset),
            peek=lambda fragment: _peek(fp, fragment),
        )
    if warning is None and transfer_syntax in _NATIVE_SYNTAXES:
        problem = "encapsulated Pixel Data in a native transfer syntax"
        located, warning = None, f"frames cannot be located: {problem}"
    if warning is None and _VIDEO_SYNTAX.fullmatch(transfer_syntax):
        problem = "a video stream is not stored frame by frame"
        located, warning = None, f"frames cannot be located: {problem}"
    return FrameIndex(
        transfer_syntax,
        frames,
        True,
        header.value_offset,
        None,
        None,
        located,
        warning=warning,
        pixel_data_tag=header.tag,
    )


def _walk_fragments(fp: BinaryIO, value_offset: int, size: int) -> tuple[list[int], list[fr.Fragment]]:
    """The Basic Offset Table and the fragments of encapsulated pixel data, by seeking over values.

    The value is a sequence of items (PS3.5 A.4): first the Basic Offset Table item, then one item
    per fragment, each ``FFFE,E000 | 4-byte length | value``, then the delimiter ``FFFE,E0DD | 0``.
    """
    fp.seek(value_offset)
    try:
        basic_offsets = parse_basic_offsets(fp)
        first_item = fp.tell()
        # Returns each item's file offset (it uses fp.tell()) without reading the values.
        _, item_offsets = parse_fragments(fp)
    except (ValueError, struct.error) as exc:
        if fp.tell() >= size:
            message = f"truncated: the file ends inside encapsulated Pixel Data ({exc})"
            raise InvalidInstanceError(message) from exc
        raise InvalidInstanceError(f"invalid encapsulated Pixel Data: {exc}") from exc
    fragments = _fragments(fp, item_offsets)
    end = fragments[-1][0] + fragments[-1][1] if fragments else first_item
    if end > size:
        raise InvalidInstanceError(
            f"truncated: fragment {len(fragments)} of Pixel Data ends at {end} but the file ends at {size}"
        )
    fp.seek(end)
    if fp.read(4) != _SEQUENCE_DELIMITER:
        raise InvalidInstanceError("truncated: encapsulated Pixel Data has no sequence delimiter")
    return basic_offsets, fragments


def _fragments(fp: BinaryIO, item_offsets: list[int]) -> list[fr.Fragment]:
    header = fr.ITEM_HEADER_LENGTH
    # Each item ends where the next begins; only the last one's length must be read.
    fragments = [(start + header, following - start - header) for start, following in pairwise(item_offsets)]
    if item_offsets:
        fp.seek(item_offsets[-1] + 4)
        raw_length = fp.read(4)
        if len(raw_length) < 4:
            raise InvalidInstanceError("truncated: the file ends inside an item header of Pixel Data")
        (length,) = _ITEM_LENGTH.unpack(raw_length)
        fragments.append((item_offsets[-1] + header, length))
    return fragments


def _peek(fp: BinaryIO, fragment: fr.Fragment) -> bytes:
    offset, length = fragment
    fp.seek(offset)
    return fp.read(min(length, fr.FRAME_START_PEEK))


def _extended_table(dataset: Dataset) -> tuple[bytes, bytes] | None:
    offsets = dataset.get("ExtendedOffsetTable")
    lengths = dataset.get("ExtendedOffsetTableLengths")
    if offsets and lengths:
        return bytes(offsets), bytes(lengths)
    return None


def _extended_offsets(dataset: Dataset) -> list[int] | None:
    table = _extended_table(dataset)
    return fr.unpack_extended_offsets(table[0]) if table else None
