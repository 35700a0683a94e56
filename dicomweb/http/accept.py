"""Lenient Accept parsing (PS3.18 §8.7) and the media types DICOMweb speaks.

Real clients send lists with q-values, unquoted ``type=`` parameters, ``*/*`` and long
viewer lists; one entry we cannot parse is skipped, never fatal to the whole header.
"""

from __future__ import annotations

from dataclasses import dataclass, field

EXPLICIT_VR_LITTLE_ENDIAN = "1.2.840.10008.1.2.1"
IMPLICIT_VR_LITTLE_ENDIAN = "1.2.840.10008.1.2"

# PS3.18 Table 8.7.3-2: the pixel media type that carries each compressed transfer syntax.
PIXEL_MEDIA_TYPES: dict[str, str] = {
    "1.2.840.10008.1.2.4.50": "image/jpeg",
    "1.2.840.10008.1.2.4.51": "image/jpeg",
    "1.2.840.10008.1.2.4.57": "image/jpeg",
    "1.2.840.10008.1.2.4.70": "image/jpeg",
    "1.2.840.10008.1.2.5": "image/dicom-rle",
    "1.2.840.10008.1.2.4.80": "image/jls",
    "1.2.840.10008.1.2.4.81": "image/jls",
    "1.2.840.10008.1.2.4.90": "image/jp2",
    "1.2.840.10008.1.2.4.91": "image/jp2",
    "1.2.840.10008.1.2.4.92": "image/jpx",
    "1.2.840.10008.1.2.4.93": "image/jpx",
    "1.2.840.10008.1.2.4.201": "image/jphc",
    "1.2.840.10008.1.2.4.202": "image/jphc",
    "1.2.840.10008.1.2.4.203": "image/jphc",
}

# PS3.18 Table 8.7.3-2: a pixel media type's default transfer syntax.
DEFAULT_TRANSFER_SYNTAX: dict[str, str] = {
    "image/jpeg": "1.2.840.10008.1.2.4.50",
    "image/dicom-rle": "1.2.840.10008.1.2.5",
    "image/jls": "1.2.840.10008.1.2.4.80",
    "image/jp2": "1.2.840.10008.1.2.4.90",
    "image/jpx": "1.2.840.10008.1.2.4.92",
    "image/jphc": "1.2.840.10008.1.2.4.201",
    "application/octet-stream": EXPLICIT_VR_LITTLE_ENDIAN,
}


@dataclass(frozen=True)
class MediaRange:
    """One entry of an Accept header, lower-cased, parameters unquoted."""

    media_type: str
    params: dict[str, str] = field(default_factory=dict)
    q: float = 1.0

    @property
    def multipart(self) -> bool:
        return self.media_type == "multipart/related"

    @property
    def part_type(self) -> str:
        """For multipart: its ``type`` (``*/*`` when absent); else the media type itself."""
        return self.params.get("type", "*/*") if self.multipart else self.media_type

    @property
    def transfer_syntax(self) -> str | None:
        return self.params.get("transfer-syntax")


def _split_outside_quotes(text: str, separator: str) -> list[str]:
    pieces: list[str] = []
    current: list[str] = []
    quoted = False
    for char in text:
        if char == '"':
            quoted = not quoted
        if char == separator and not quoted:
            pieces.append("".join(current))
            current = []
        else:
            current.append(char)
    pieces.append("".join(current))
    return pieces


def _parse_entry(entry: str) -> MediaRange | None:
    pieces = [piece.strip() for piece in _split_outside_quotes(entry, ";")]
    media_type = pieces[0].lower()
    if media_type.count("/") != 1:
        return None
    params: dict[str, str] = {}
    q = 1.0
    for piece in pieces[1:]:
        name, sep, value = piece.partition("=")
        if not sep:
            continue
        name, value = name.strip().lower(), value.strip().strip('"').strip()
        if name == "q":
            try:
                q = float(value)
            except ValueError:
                continue
        else:
            params[name] = value.lower() if name == "type" else value
    return MediaRange(media_type, params, q)


def parse_accept(header: str | None) -> list[MediaRange]:
    """Entries by preference (q descending, then order given); ``*/*`` if none is given."""
    if not header or not header.strip():
        return [MediaRange("*/*")]
    entries = [_parse_entry(entry) for entry in _split_outside_quotes(header, ",") if entry.strip()]
    ranges = [entry for entry in entries if entry is not None and entry.q > 0]
    return sorted(ranges, key=lambda entry: -entry.q)


def matches(accepted: str, offered: str) -> bool:
    """Does the accepted type (maybe ``*/*`` or ``image/*``) cover the offered one?"""
    if accepted in ("*/*", "*"):
        return True
    kind, _, sub = accepted.partition("/")
    offered_kind, _, offered_sub = offered.partition("/")
    return kind == offered_kind and sub in ("*", offered_sub)


def accepts_json(header: str | None) -> bool:
    """For responses that are DICOM JSON (QIDO, metadata, STOW)."""
    return any(
        matches(entry.media_type, "application/dicom+json") or entry.media_type == "application/json"
        for entry in parse_accept(header)
    )
