"""DICOM JSON (PS3.18 F.2) of one element straight from its raw bytes, for the common cases.

Why hand-written: pydicom's generic path (``Dataset[tag]`` converting the
``RawDataElement`` through its hooks into a ``DataElement`` with ``IS``/``DSfloat``/
``PersonName``/``UID`` objects and a ``MultiValue``, then ``DataElement.to_json_dict`` and
``convert_to_python_number``) costs ~25 µs an element: 0.9 ms of CPU for the bench's CT
header (36 elements) of the ~10 ms a STOW of it takes, 0.17 ms here, where a value goes from
bytes to ``str``/``int``/``float`` in one step (``python -m bench.dicomjson_bench``).

The rule is *same output as pydicom or no output*: :func:`element_json` returns ``None``
for anything it does not reproduce exactly — a VR it does not handle, a VR that needs the
dictionary's private or ambiguous entries, a value length that does not fit the VR, an
``IS``/``DS`` string outside the plain number syntax, text in a character set other than
the default, ISO_IR 100 or ISO_IR 192 (or with escape sequences, or not valid UTF-8), or
pydicom configured away from its defaults (:func:`pydicom_defaults`) — and the caller then
takes pydicom's path for that element. ``tests/dicom/test_dicom_json_equivalence.py``
compares both builders over every file we have.
"""

from __future__ import annotations

import re
import struct
from base64 import b64encode
from collections.abc import Sequence
from typing import Any

from pydicom import config, hooks
from pydicom.datadict import DicomDictionary
from pydicom.dataelem import DataElement, RawDataElement
from pydicom.tag import _LUT_DESCRIPTOR_TAGS
from pydicom.uid import UID

BINARY_VRS = frozenset({"OB", "OD", "OF", "OL", "OV", "OW"})
"""Binary VRs whose value is bytes, inlined or made a BulkDataURI by the caller. (UN is
not here: pydicom replaces it by the dictionary's VR, so it takes pydicom's path.)"""

# Python codecs (as pydicom.charset.convert_encodings names them) for which a value without
# escape sequences decodes as ``bytes.decode(codec)`` alone: default, ISO_IR 100, ISO_IR 192.
_TEXT_CODECS = frozenset({"iso8859", "latin_1", "UTF8"})
_ESC = b"\x1b"
# Plain ints: ``in`` on pydicom's tuple of tags calls BaseTag.__eq__ (Python) for each.
_LUT_DESCRIPTORS = frozenset(int(tag) for tag in _LUT_DESCRIPTOR_TAGS)
_NUMBER_FORMATS = {"US": "H", "SS": "h", "UL": "L", "SL": "l", "FL": "f", "FD": "d", "SV": "q", "UV": "Q"}
_NUMBER_SIZES = {vr: struct.calcsize("=" + code) for vr, code in _NUMBER_FORMATS.items()}
# Integers pydicom's IS keeps as int: digits only, and few enough that float(text) == int(text)
# (longer ones turn into ISfloat); DS as Python's float() reads them, minus "nan", "inf", "1_0".
_IS_TEXT = re.compile(r" *[+-]?[0-9]{1,15} *")
_DS_TEXT = re.compile(r" *[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)? *")


_CONVERTED_INT_VRS = frozenset({"US", "SS", "UL", "SL", "UV", "SV"})
_CONVERTED_FLOAT_VRS = frozenset({"FL", "FD"})
_CONVERTED_STR_VRS = frozenset({"AE", "AS", "CS", "DA", "DT", "TM", "UI", "UR", "SH", "LO", "UC", "ST", "LT", "UT"})


def pydicom_defaults() -> bool:
    """True while pydicom converts raw values the way :func:`element_json` reproduces:
    default hooks, no callback, no date/time or Decimal/numpy conversion, and reading
    validation that warns rather than raises."""
    return (
        config.data_element_callback is None
        and hooks.hooks.raw_element_vr is hooks.raw_element_vr
        and hooks.hooks.raw_element_value is hooks.raw_element_value
        and not hooks.hooks.raw_element_kwargs
        and not config.datetime_conversion
        and not config.use_DS_decimal
        and not config.use_DS_numpy
        and not config.use_IS_numpy
        and not config.use_none_as_empty_text_VR_value
        and config.settings.reading_validation_mode != config.RAISE
    )


def text_codec(encodings: str | Sequence[str] | None) -> str | None:
    """The one codec for text VRs of a dataset with character set ``encodings`` (as pydicom's
    ``original_character_set`` gives it), or ``None`` when the fast path leaves them alone."""
    if isinstance(encodings, str):
        return encodings if encodings in _TEXT_CODECS else None
    if encodings is not None and len(encodings) == 1 and encodings[0] in _TEXT_CODECS:
        return encodings[0]
    return None


def raw_vr(raw: RawDataElement) -> str | None:
    """The VR pydicom would give ``raw``, when it needs no private dictionary, no repeater
    group and no ambiguity resolution; else ``None``."""
    vr = raw.VR
    if vr is None:  # implicit VR: the public dictionary's entry
        entry = DicomDictionary.get(raw.tag)
        if entry is None:
            return None
        vr = entry[0]
    return vr if vr in _CONVERTERS or vr in BINARY_VRS else None


def binary_json(vr: str, value: bytes) -> dict[str, Any]:
    """A short binary value inline, as pydicom writes it (no padding to even length)."""
    if not value:
        return {"vr": vr}
    return {"vr": vr, "InlineBinary": b64encode(value).decode()}


def converted_json(element: DataElement) -> dict[str, Any] | None:
    """The DICOM JSON of an element pydicom has already converted (reading the header touches
    a few: Rows, SOP Instance UID, ...) when its value is one plain number or string, else
    ``None``. What ``to_json_dict`` gives, without its VM and type dispatch."""
    vr, value = element.VR, element.value
    kind = type(value)
    if (kind is int and vr in _CONVERTED_INT_VRS) or (kind is float and vr in _CONVERTED_FLOAT_VRS):
        return {"vr": vr, "Value": [value]}
    if (kind is str or kind is UID) and vr in _CONVERTED_STR_VRS:
        return {"vr": vr, "Value": [value]} if value else {"vr": vr}
    return None


def element_json(vr: str, raw: RawDataElement, codec: str | None) -> dict[str, Any] | None:
    """The DICOM JSON of a non-binary, non-sequence ``raw`` element of VR ``vr`` (from
    :func:`raw_vr`), or ``None`` where pydicom's path must decide. ``codec`` is the
    dataset's :func:`text_codec`."""
    value = raw.value
    if value is None or int(raw.tag) in _LUT_DESCRIPTORS:
        return None  # a deferred read, or a value pydicom patches
    if raw.length == 0:
        return {"vr": vr}
    converter = _CONVERTERS.get(vr)
    if converter is None:
        return None
    values = converter(vr, value, raw.is_little_endian, codec)
    if values is None:
        return None
    return {"vr": vr, "Value": values} if values else {"vr": vr}


# Each converter returns the JSON "Value" list (empty for an empty value), or None to decline.
# pydicom's rule for strings: one value that is empty is an empty element; of several values,
# empty ones stay as "".


def _single_or_many(items: list[Any]) -> list[Any]:
    if len(items) == 1 and not items[0]:
        return []
    return items


def _ae(vr: str, value: bytes, little: bool, codec: str | None) -> list[Any] | None:
    # convert_AE_string: leading and trailing spaces of each value are not significant.
    return _single_or_many([item.strip() for item in value.decode("latin_1").split("\\")])


def _code_string(vr: str, value: bytes, little: bool, codec: str | None) -> list[Any] | None:
    # convert_string (AS, CS, and DA/DT/TM without datetime conversion).
    return _single_or_many(value.decode("latin_1").rstrip(" \x00").split("\\"))


def _uid(vr: str, value: bytes, little: bool, codec: str | None) -> list[Any] | None:
    # convert_UI: UID() strips each value.
    items = value.decode("latin_1").rstrip("\0 ").split("\\")
    return _single_or_many([item.strip() for item in items])


def _uri(vr: str, value: bytes, little: bool, codec: str | None) -> list[Any] | None:
    text = value.decode("latin_1").rstrip()
    return [text] if text else []


def _decode(value: bytes, codec: str | None) -> str | None:
    if codec is None or _ESC in value:
        return None
    try:
        return value.decode(codec)
    except UnicodeDecodeError:  # pydicom then decodes with replacement characters and warns
        return None


def _text(vr: str, value: bytes, little: bool, codec: str | None) -> list[Any] | None:
    # convert_text (SH, LO, UC): multi-valued, trailing spaces and NULs dropped from each.
    text = _decode(value, codec)
    if text is None:
        return None
    return _single_or_many([item.rstrip("\0 ") for item in text.split("\\")])


def _single_text(vr: str, value: bytes, little: bool, codec: str | None) -> list[Any] | None:
    # convert_single_string (ST, LT, UT): one value, backslashes are text.
    text = _decode(value, codec)
    if text is None:
        return None
    text = text.rstrip("\0 ")
    return [text] if text else []


def _person_name(vr: str, value: bytes, little: bool, codec: str | None) -> list[Any] | None:
    text = _decode(value.rstrip(b"\x00 "), codec)
    if text is None:
        return None
    names = []
    for item in text.split("\\"):
        groups = item.split("=")
        while groups and not groups[-1]:  # PersonName drops empty trailing groups
            groups.pop()
        names.append(groups)
    if len(names) == 1 and not names[0]:
        return []
    if not all(names):
        return None  # pydicom fails on an empty name among several: let it do so
    return [_person_name_json(groups) for groups in names]


def _person_name_json(groups: list[str]) -> dict[str, str]:
    result = {"Alphabetic": groups[0]}
    if len(groups) > 1:
        result["Ideographic"] = groups[1]
    if len(groups) > 2:
        result["Phonetic"] = groups[2]
    return result


def _integer_string(vr: str, value: bytes, little: bool, codec: str | None) -> list[Any] | None:
    items = value.decode("latin_1").rstrip(" \x00").split("\\")
    if not all(_IS_TEXT.fullmatch(item) for item in items):
        return None
    return [int(item) for item in items]


def _decimal_string(vr: str, value: bytes, little: bool, codec: str | None) -> list[Any] | None:
    items = value.decode("latin_1").strip().rstrip(" \x00").split("\\")
    if not all(_DS_TEXT.fullmatch(item) for item in items):
        return None
    return [float(item) for item in items]


def _numbers(vr: str, value: bytes, little: bool, codec: str | None) -> list[Any] | None:
    count, remainder = divmod(len(value), _NUMBER_SIZES[vr])
    if remainder:
        return None  # pydicom raises or converts to UN
    return list(struct.unpack(f"{'<' if little else '>'}{count}{_NUMBER_FORMATS[vr]}", value))


def _tags(vr: str, value: bytes, little: bool, codec: str | None) -> list[Any] | None:
    count, remainder = divmod(len(value), 4)
    if remainder:
        return None  # pydicom drops the odd bytes with a warning
    halves = struct.unpack(f"{'<' if little else '>'}{2 * count}H", value)
    return [f"{group << 16 | element:08X}" for group, element in zip(halves[::2], halves[1::2], strict=True)]


_CONVERTERS = {
    "AE": _ae,
    "AS": _code_string,
    "CS": _code_string,
    "DA": _code_string,
    "DT": _code_string,
    "TM": _code_string,
    "UI": _uid,
    "UR": _uri,
    "SH": _text,
    "LO": _text,
    "UC": _text,
    "ST": _single_text,
    "LT": _single_text,
    "UT": _single_text,
    "PN": _person_name,
    "IS": _integer_string,
    "DS": _decimal_string,
    **dict.fromkeys(_NUMBER_FORMATS, _numbers),
    "AT": _tags,
}
