"""Turning attribute values into the keys the index compares.

Stored values and query values pass through the same functions, so matching in the
database is plain string equality, ordering or GLOB:

* PN: upper-cased (person name matching is case-insensitive), padding and trailing
  empty components dropped; one key per component group (alphabetic, ideographic,
  phonetic), and separately one *word* per name component for fuzzy matching.
* DA: ``YYYYMMDD`` (stored legacy ``YYYY.MM.DD`` is accepted).
* TM: ``HHMMSS.ffffff``; DT: ``YYYYMMDDHHMMSS.ffffff`` with the UTC offset dropped.
  A partial value stands for the whole period it names, so it has a lower and an upper
  bound: ``10`` is 10:00:00.000000 to 10:59:59.999999. Stored values are points (the
  lower bound).
* numbers (IS DS FL FD SS US SL UL ...): :func:`number_key`, 16 hex digits whose text order
  is the numbers' order, so equality *and* ranges compare numbers (``1.0`` is ``1``) with
  plain string comparison on every store (SQLite, Cosmos).
* everything else: the value without DICOM padding spaces, case kept.

Values that do not parse are stored as written (they can still match exactly).
"""

from __future__ import annotations

import math
import re
import struct
from collections.abc import Iterable
from datetime import date
from typing import Any

WILDCARD_VRS = frozenset({"AE", "CS", "LO", "LT", "PN", "SH", "ST", "UC", "UR", "UT"})
"""VRs for which PS3.4 C.2.2.2.4 gives ``*`` and ``?`` their wildcard meaning."""
INTEGER_VRS = frozenset({"IS", "US", "UL", "SS", "SL", "UV", "SV"})
DECIMAL_VRS = frozenset({"DS", "FL", "FD"})

_PN_GROUPS = ("Alphabetic", "Ideographic", "Phonetic")
_WORD_SPLIT = re.compile(r"[\^\s]+")
_TIME = re.compile(r"(\d{2})(\d{2})?(\d{2})?(?:\.(\d{1,6}))?")
_DATETIME = re.compile(r"(\d{4})(\d{2})?(\d{2})?(\d{2})?(\d{2})?(\d{2})?(?:\.(\d{1,6}))?([+-]\d{4})?")


def element_values(dataset: dict[str, Any], path: tuple[str, ...]) -> list[Any]:
    """The values at ``path`` in a DICOM JSON dataset, through every sequence item.

    Elements carrying BulkDataURI or InlineBinary have no ``Value`` and yield nothing.
    """
    element = dataset.get(path[0])
    if not isinstance(element, dict):
        return []
    values = element.get("Value") or []
    if len(path) == 1:
        return [value for value in values if value is not None]
    found: list[Any] = []
    for item in values:
        if isinstance(item, dict):
            found.extend(element_values(item, path[1:]))
    return found


def index_keys(vr: str, values: Iterable[Any]) -> list[str]:
    """The keys stored for matching, one per distinct value (or name group)."""
    keys: list[str] = []
    for value in values:
        for key in _stored_keys(vr, value):
            if key and key not in keys:
                keys.append(key)
    return keys


def name_words(values: Iterable[Any]) -> list[str]:
    """Every name component of person name values, upper-cased, for fuzzy matching."""
    words: list[str] = []
    for value in values:
        for group in _name_groups(value):
            for word in split_name_words(group):
                if word not in words:
                    words.append(word)
    return words


def split_name_words(text: str) -> list[str]:
    return [word for word in _WORD_SPLIT.split(text.upper()) if word]


def _stored_keys(vr: str, value: Any) -> list[str]:
    if vr == "PN":
        return [person_name_key(group) for group in _name_groups(value)]
    text = str(value).strip()
    if vr == "DA":
        return [_stored_date(text)]
    if vr == "TM":
        bounds = time_bounds(text.replace(":", ""))
        return [bounds[0] if bounds else text]
    if vr == "DT":
        bounds = datetime_bounds(text)
        return [bounds[0] if bounds else text]
    if vr in INTEGER_VRS or vr in DECIMAL_VRS:
        try:
            return [number_key(vr, text)]
        except ValueError:
            return [text]
    return [text]


def _name_groups(value: Any) -> list[str]:
    if isinstance(value, dict):
        return [str(value[group]) for group in _PN_GROUPS if value.get(group)]
    return [str(value)] if value else []


def person_name_key(text: str) -> str:
    """``Doe^John^^^`` -> ``DOE^JOHN``: the form both sides of a PN match use."""
    components = [component.strip() for component in text.upper().split("^")]
    while components and not components[-1]:
        components.pop()
    return "^".join(components)


_NUMBER = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
"""A decimal number as DS (PS3.5 6.2) writes it; integers, and FL/FD from DICOM JSON, too."""
_SIGN_BIT = 1 << 63
_ALL_BITS = (1 << 64) - 1


def parse_number(vr: str, text: str) -> float:
    """The number ``text`` names for ``vr``; raises ``ValueError`` when it is not one
    (float() alone would also take ``nan``, ``inf`` and ``1_000``)."""
    text = text.strip()
    if not _NUMBER.fullmatch(text):
        raise ValueError("not a number")
    number = float(text)
    if not math.isfinite(number):
        raise ValueError("out of range")
    if vr in INTEGER_VRS and not number.is_integer():
        raise ValueError("not an integer")
    if vr == "FL":  # a stored FL is a 32-bit float: compare at that precision on both sides
        number = struct.unpack(">f", struct.pack(">f", number))[0]
    return number


def number_key(vr: str, text: str) -> str:
    """The match key of a number: its IEEE-754 double as 16 hex digits, transformed so
    that text order is numeric order (positive: sign bit set; negative: all bits
    inverted). Equal numbers get one key (``1``, ``1.0``, ``+1e0``; ``-0`` is ``0``), so
    equality and ranges are string comparisons on every store. Integer VRs (at most 32
    bits in the supported VRs) are exact in a double. Raises ``ValueError`` for a value
    that is not a number of ``vr``."""
    number = parse_number(vr, text) + 0.0  # -0.0 + 0.0 is 0.0
    (bits,) = struct.unpack(">Q", struct.pack(">d", number))
    ordered = bits ^ _ALL_BITS if bits & _SIGN_BIT else bits | _SIGN_BIT
    return f"{ordered:016x}"


def _stored_date(text: str) -> str:
    if re.fullmatch(r"\d{4}\.\d{2}\.\d{2}", text):
        return text.replace(".", "")
    return text


def parse_date(text: str) -> str | None:
    """``YYYYMMDD`` if ``text`` is a valid calendar date in that form, else ``None``."""
    if not re.fullmatch(r"\d{8}", text):
        return None
    try:
        date(int(text[:4]), int(text[4:6]), int(text[6:]))
    except ValueError:
        return None
    return text


def time_bounds(text: str) -> tuple[str, str] | None:
    """First and last instant of the period a (partial) TM value names."""
    found = _TIME.fullmatch(text)
    if not found:
        return None
    hour, minute, second, fraction = found.groups()
    if fraction is not None and second is None:
        return None
    if int(hour) > 23 or (minute and int(minute) > 59) or (second and int(second) > 60):
        return None
    low = f"{hour}{minute or '00'}{second or '00'}.{(fraction or '').ljust(6, '0')}"
    high = f"{hour}{minute or '59'}{second or '59'}.{(fraction or '').ljust(6, '9')}"
    return low, high


def datetime_bounds(text: str) -> tuple[str, str] | None:
    """First and last instant of the period a (partial) DT value names; offset ignored."""
    found = _DATETIME.fullmatch(text)
    if not found:
        return None
    year, month, day, hour, minute, second, fraction, offset = found.groups()
    if offset and (int(offset[1:3]) > 14 or int(offset[3:]) > 59):
        return None
    parts = [month, day, hour, minute, second]
    # A part may only be given when every larger part is.
    present = [part is not None for part in parts] + [fraction is not None]
    if any(later and not earlier for earlier, later in zip(present, present[1:], strict=False)):
        return None
    limits = [(1, 12), (1, 31), (0, 23), (0, 59), (0, 60)]
    for part, (lowest, highest) in zip(parts, limits, strict=True):
        if part is not None and not lowest <= int(part) <= highest:
            return None
    low_fill = ["01", "01", "00", "00", "00"]
    high_fill = ["12", "31", "23", "59", "59"]
    low = year + "".join(p or f for p, f in zip(parts, low_fill, strict=True))
    high = year + "".join(p or f for p, f in zip(parts, high_fill, strict=True))
    return f"{low}.{(fraction or '').ljust(6, '0')}", f"{high}.{(fraction or '').ljust(6, '9')}"
