"""Rewriting a whole instance in Explicit VR Little Endian (WADO-RS instance retrieval).

The only conversion of whole instances offered: from Implicit VR Little Endian, Explicit VR
Big Endian, Deflated, or a compressed syntax pydicom can decode. pydicom holds the dataset
in memory to rewrite it, so callers bound the work by :func:`decoded_pixel_bytes` and the
stored size (``DICOMWEB_TRANSCODE_MAX_BYTES``) before starting.
"""

from __future__ import annotations

import math
from io import BytesIO
from typing import Any, BinaryIO

import numpy as np
from pydicom import Dataset, dcmread
from pydicom.uid import ExplicitVRLittleEndian

WORD_SIZES = {"OW": 2, "OL": 4, "OF": 4, "OD": 8, "OV": 8}
"""Value representations held as raw bytes whose words pydicom does not swap itself."""
PIXEL_DATA = 0x7FE00010


class TranscodeError(ValueError):
    """The instance cannot be converted; the message says why (for a 406)."""


def decoded_pixel_bytes(attributes: dict[str, Any]) -> int:
    """The size of the instance's pixel data once decoded, from its DICOM JSON."""
    def number(tag: str, default: int) -> int:
        values = attributes.get(tag, {}).get("Value") or [default]
        try:
            return int(values[0])
        except (TypeError, ValueError):
            return default

    bits = number("00280100", 8)
    pixels = number("00280010", 0) * number("00280011", 0) * number("00280002", 1) * number("00280008", 1)
    return math.ceil(pixels * bits / 8)


def to_explicit_little_endian(fp: BinaryIO) -> bytes:
    """The file in ``fp`` rewritten as Explicit VR Little Endian (decompressed if needed)."""
    try:
        dataset = dcmread(fp)
        syntax = dataset.file_meta.TransferSyntaxUID
        if syntax.is_compressed:
            dataset.decompress()  # also sets the transfer syntax (and RGB for YBR JPEG)
        elif not syntax.is_little_endian:
            _swap_to_little_endian(dataset)
    except (NotImplementedError, RuntimeError, ValueError, AttributeError) as exc:
        raise TranscodeError(f"cannot convert the instance to Explicit VR Little Endian: {exc}") from exc
    dataset.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    out = BytesIO()
    dataset.save_as(out, enforce_file_format=True, implicit_vr=False, little_endian=True)
    return out.getvalue()


def _swap_to_little_endian(dataset: Dataset) -> None:
    """Make a big endian dataset writable as little endian. pydicom decodes numbers (US,
    FL, ...) into values it re-encodes itself, but keeps OW/OL/OF/OD/OV and Pixel Data as
    raw big endian bytes and refuses to change their byte order (dcmwrite's note), so
    their words are swapped here."""
    bits = int(dataset.get("BitsAllocated", 8) or 8)
    for element in dataset.iterall():  # iterating converts every raw element to a value
        if not isinstance(element.value, bytes | bytearray):
            continue
        if element.tag == PIXEL_DATA:
            size = bits // 8 if bits > 8 else (2 if element.VR == "OW" else 1)
        else:
            size = WORD_SIZES.get(element.VR, 1)
        if size > 1:
            element.value = _swapped(bytes(element.value), size)
    _mark_little_endian(dataset)


def _swapped(data: bytes, size: int) -> bytes:
    whole = len(data) - len(data) % size
    return np.frombuffer(data[:whole], f">u{size}").astype(f"<u{size}").tobytes() + data[whole:]


def _mark_little_endian(dataset: Dataset) -> None:
    dataset.set_original_encoding(False, True, dataset.original_character_set)
    for element in dataset.iterall():
        if element.VR == "SQ":
            for item in element.value:
                item.set_original_encoding(False, True, item.original_character_set)
