"""How much work parsing one DICOM file may cost: bounded for any input.

A file's header is read into memory by pydicom, and a Deflated Explicit VR Little Endian
dataset is one deflate stream that pydicom inflates whole (a 2 MB upload can inflate to
gigabytes). Both are capped before pydicom runs. The limits are process-wide parsing rules,
set once by the composition root from the settings (``DICOMWEB_MAX_HEADER_BYTES``,
``DICOMWEB_MAX_INFLATED_BYTES``); the defaults are safe without it.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from typing import BinaryIO

MIB = 1024**2
_CHUNK = 1 << 20


@dataclass(frozen=True)
class ParseLimits:
    max_header_bytes: int = 64 * MIB
    """Bytes of a header (everything before Pixel Data) pydicom may read into memory; this also
    bounds the number of sequence items parsed (each takes at least 8 bytes)."""
    max_inflated_bytes: int = 256 * MIB
    """Bytes a deflated dataset may inflate to."""


_current = ParseLimits()


def configure(limits: ParseLimits) -> None:
    global _current
    _current = limits


def current() -> ParseLimits:
    return _current


class LimitExceededError(ValueError):
    """The file is larger than a parsing limit allows; the message names the limit."""


def check_inflated_size(fp: BinaryIO, start: int, limit: int) -> int:
    """The inflated size of the raw deflate stream from ``start``; raises
    :class:`LimitExceededError` past ``limit``. Inflates chunk by chunk, keeping nothing,
    so memory stays at one chunk whatever the ratio (zlib's ``max_length`` bounds each
    step's output)."""
    fp.seek(start)
    inflater = zlib.decompressobj(-zlib.MAX_WBITS)
    total = 0
    pending = b""
    while True:
        if not pending:
            pending = fp.read(_CHUNK)
            if not pending:
                break
        try:
            out = inflater.decompress(pending, _CHUNK)
        except zlib.error as exc:
            raise ValueError(f"the deflated dataset is not a valid deflate stream: {exc}") from exc
        pending = inflater.unconsumed_tail
        total += len(out)
        if total > limit:
            raise LimitExceededError(
                f"the deflated dataset inflates to more than {limit} bytes (DICOMWEB_MAX_INFLATED_BYTES)")
        if inflater.eof:
            break
    return total
