"""Hostile inputs for the robustness tests: deflate bombs, oversized headers."""

from __future__ import annotations

import struct
import zlib
from io import BytesIO

from pydicom import Dataset
from pydicom.uid import DeflatedExplicitVRLittleEndian

from tests.support.builders import make_dataset


def _meta_prefix(ds: Dataset) -> bytes:
    """Preamble, 'DICM' and the File Meta group of ``ds`` (deflated transfer syntax)."""
    ds.file_meta.TransferSyntaxUID = DeflatedExplicitVRLittleEndian
    out = BytesIO()
    ds.save_as(out, enforce_file_format=True)
    data = out.getvalue()
    # The File Meta group ends where group 0008 starts; everything after is the deflate stream.
    position = 132
    while data[position:position + 2] == b"\x02\x00":
        vr = data[position + 4:position + 6]
        if vr in (b"OB", b"OW", b"UN", b"SQ", b"UT", b"UC", b"UR"):
            length = struct.unpack("<I", data[position + 8:position + 12])[0]
            position += 12 + length
        else:
            length = struct.unpack("<H", data[position + 6:position + 8])[0]
            position += 8 + length
    return data[:position]


def deflate_bomb(inflated_bytes: int, **attributes: str) -> tuple[bytes, Dataset]:
    """A Deflated Explicit VR Little Endian instance whose Pixel Data inflates to about
    ``inflated_bytes`` of zeros (the file itself stays small), and its header dataset."""
    ds = make_dataset(**attributes)  # type: ignore[arg-type]
    prefix = _meta_prefix(ds)
    header = Dataset()
    for element in ds:
        if element.tag != 0x7FE00010:
            header.add(element)
    body = BytesIO()
    header.save_as(body, implicit_vr=False, little_endian=True)
    deflater = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    out = [deflater.compress(body.getvalue())]
    length = inflated_bytes - inflated_bytes % 2
    out.append(deflater.compress(b"\xe0\x7f\x10\x00OW\x00\x00" + struct.pack("<I", length)))
    chunk = bytes(1 << 20)
    remaining = length
    while remaining:
        piece = chunk[: min(len(chunk), remaining)]
        out.append(deflater.compress(piece))
        remaining -= len(piece)
    out.append(deflater.flush())
    return prefix + b"".join(out), ds


def deflated(ds: Dataset) -> bytes:
    """``ds`` written in the Deflated transfer syntax (a legitimate, small instance)."""
    ds.file_meta.TransferSyntaxUID = DeflatedExplicitVRLittleEndian
    out = BytesIO()
    ds.save_as(out, enforce_file_format=True)
    return out.getvalue()
