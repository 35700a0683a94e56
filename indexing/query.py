"""The QIDO-RS query model and its parser (PS3.18 8.3.4 and 10.6.1, PS3.4 C.2.2.2).

Semantics chosen here (summarised in docs/conformance.md):

* Keys are keywords (case-sensitive, as in PS3.6) or tags ``ggggeeee`` (hex, any case);
  a sequence item attribute is ``Sequence.Attribute`` in either form.
* Keys of the resource's level or a higher one are allowed (``/instances?PatientID=``);
  a non-empty key of a lower level (``/studies?SOPInstanceUID=``) is a 400, since
  PS3.18 10.6.1 allows only Study attributes for studies, Study and Series for series.
* An empty value, or ``*`` alone, is universal matching: no filter, the attribute is
  returned. A return-only attribute (counts, Instance Availability) accepts only that.
* UI: single value or a UID list, comma- or backslash-separated, or the key repeated.
  Any other key given twice is a 400.
* DA/TM/DT: single value or range ``a-b``, ``a-``, ``-b``; every bound is validated.
  A partial TM/DT names a period (``10`` is all of 10 h), so ``StudyTime=10`` matches
  10:00 to 10:59:59.999999. UTC offsets in DT are ignored; a DT with an offset is read
  as a single value when the whole text parses as one. Date and time are matched
  independently (no combined StudyDate+StudyTime range).
* Wildcards ``*`` and ``?``: for AE, CS, LO, LT, PN, SH, ST, UC, UR, UT (PS3.4
  C.2.2.2.4); in any other VR they are a 400. Matching is case-sensitive except PN.
* Several values separated by backslash (and, for CS, comma) match any of them.
* PN: case-insensitive; with ``fuzzymatching=true`` a name matches when every word of
  the value starts some component of the name (``joh`` matches ``DOE^JOHN``). A PN
  value with a wildcard is wildcard-matched even with fuzzy matching on.
* Integers and decimals are compared as numbers (``InstanceNumber=01`` matches 1,
  ``SliceThickness=1.0`` matches a stored ``1``); a range ``a-b``, ``a-``, ``-b`` (the date
  range syntax; not in the standard for numbers) matches ``a <= value <= b``.
* ``includefield``: repeatable and comma-separated keywords, tags, or ``all``. Names
  that are not DICOM attributes are a 400; attributes below the resource's level are
  ignored (PS3.18 10.6.3.3). DICOM attributes the table lacks are collected in
  ``header_tags``: an instance search answers them from the stored headers; a study or
  series search returns what the table stores for its level.
* ``limit``: default 100, values above 10000 are lowered to 10000; ``offset`` default 0,
  at most 1,000,000. Both must be non-negative integers (ASCII digits), ``limit`` at least 1.
* A key may carry at most ``max_values`` alternatives (values, patterns or UIDs; with fuzzy
  matching every word counts), so no query costs more than a bounded number of index
  lookups; more is a 400 naming the key.
* Any other parameter that is not an attribute is a 400.
* Double-encoded values: Starlette decodes the query string once; a value still holding
  a ``%XX`` escape afterwards (``DOE%5EJ%2A`` from a client that encoded twice) is
  decoded once more. DICOM values never legitimately contain ``%`` followed by two hex
  digits in the attributes searched, so this cannot change a correct query.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum
from urllib.parse import unquote

from pydicom.datadict import tag_for_keyword

from dicomcore.uids import is_valid_uid
from indexing.attributes import Attribute, AttributeTable, Level, standard_table
from indexing.values import (
    DECIMAL_VRS,
    INTEGER_VRS,
    WILDCARD_VRS,
    datetime_bounds,
    number_key,
    parse_date,
    person_name_key,
    split_name_words,
    time_bounds,
)

__all__ = ["Level", "Match", "MatchKind", "Query", "QueryError", "parse_query", "returned_tags"]

DEFAULT_LIMIT = 100
MAX_LIMIT = 10000
MAX_OFFSET = 1_000_000
DEFAULT_MAX_VALUES = 200

STUDY_UID_TAG = "0020000D"
SERIES_UID_TAG = "0020000E"
SOP_UID_TAG = "00080018"

_LOCATING_UIDS = {
    Level.STUDY: frozenset({STUDY_UID_TAG}),
    Level.SERIES: frozenset({STUDY_UID_TAG, SERIES_UID_TAG}),
    Level.INSTANCE: frozenset({STUDY_UID_TAG, SERIES_UID_TAG, SOP_UID_TAG}),
}
_PLURAL = {Level.STUDY: "studies", Level.SERIES: "series", Level.INSTANCE: "instances"}
_CONTROL_PARAMETERS = ("includefield", "limit", "offset", "fuzzymatching")
_TAG = re.compile(r"[0-9A-Fa-f]{8}")
_ESCAPE = re.compile(r"%[0-9A-Fa-f]{2}")


class MatchKind(StrEnum):
    SINGLE = "single"
    """``values`` are alternatives; a stored key equal to one matches."""
    UID_LIST = "uid_list"
    """``values`` are UIDs; a stored key equal to one matches."""
    WILDCARD = "wildcard"
    """``values`` are patterns with ``*`` and ``?``; a stored key matching one matches."""
    RANGE = "range"
    """``lower`` <= stored key <= ``upper``; either bound may be ``None``."""
    FUZZY = "fuzzy"
    """``values`` are person names; each word of one must start some name word."""


@dataclass(frozen=True)
class Match:
    """One filter: the attribute ``tag`` (a path for sequence items) of ``level``."""

    tag: str
    level: Level
    vr: str
    kind: MatchKind
    values: tuple[str, ...] = ()
    lower: str | None = None
    upper: str | None = None


@dataclass(frozen=True)
class Query:
    level: Level
    study_uid: str | None = None
    series_uid: str | None = None
    matches: tuple[Match, ...] = ()
    include_all: bool = False
    include_tags: frozenset[str] = frozenset()
    """Top-level tags asked for with ``includefield`` (only levels the resource returns)."""
    header_tags: frozenset[str] = frozenset()
    """Top-level tags asked for with ``includefield`` that the table does not hold: an
    instance search answers them from the stored headers (see the QIDO routes)."""
    limit: int = DEFAULT_LIMIT
    offset: int = 0
    fuzzy: bool = False


class QueryError(ValueError):
    """A query parameter that cannot be honoured; ``message`` names it."""

    def __init__(self, parameter: str, message: str) -> None:
        super().__init__(message)
        self.parameter = parameter
        self.message = message


def parse_query(
    level: Level,
    params: list[tuple[str, str]],
    *,
    study_uid: str | None = None,
    series_uid: str | None = None,
    table: AttributeTable | None = None,
    max_values: int = DEFAULT_MAX_VALUES,
) -> Query:
    """The :class:`Query` for a search of ``level`` with the request's query parameters;
    a key with more than ``max_values`` alternatives is a :class:`QueryError`."""
    parser = _Parser(level, table or standard_table(), max_values)
    parser.check_path_uid("Study Instance UID", study_uid)
    parser.check_path_uid("Series Instance UID", series_uid)
    for key, raw_value in params:
        parser.add(key, _decode_again(raw_value))
    return parser.build(study_uid, series_uid)


def visible_levels(query: Query) -> frozenset[Level]:
    """Levels whose default attributes a result carries (PS3.18 10.6.3.3.1-3): the
    resource's own, plus those above it that the path does not fix."""
    levels = {query.level}
    if query.level is not Level.STUDY and query.study_uid is None:
        levels.add(Level.STUDY)
    if query.level is Level.INSTANCE and query.series_uid is None:
        levels.add(Level.SERIES)
    return frozenset(levels)


def returned_tags(query: Query, table: AttributeTable | None = None) -> frozenset[str]:
    """The top-level tags a result of ``query`` carries, before Retrieve URL is added.

    Defaults of the visible levels, everything of them with ``includefield=all``, the
    included and matched attributes, and the UIDs locating the result (clients need
    them to retrieve it).
    """
    table = table or standard_table()
    levels = visible_levels(query)
    tags = {entry.top_tag for entry in table.entries if entry.level in levels and (entry.default or query.include_all)}
    tags |= query.include_tags
    tags |= {match.tag.split(".")[0] for match in query.matches}
    tags |= _LOCATING_UIDS[query.level]
    return frozenset(tags)


def _decode_again(value: str) -> str:
    return unquote(value) if _ESCAPE.search(value) else value


def _quote(key: str, value: str) -> str:
    return f"'{key}={value}'"


@dataclass
class _Key:
    """An attribute key collected from the request, values in arrival order."""

    entry: Attribute
    key: str
    values: list[str]


class _Parser:
    def __init__(self, level: Level, table: AttributeTable, max_values: int) -> None:
        self.level = level
        self.table = table
        self.max_values = max_values
        self.keys: dict[str, _Key] = {}
        self.include_tags: set[str] = set()
        self.include_all = False
        self.header_tags: set[str] = set()
        self.controls: dict[str, str] = {}

    def check_path_uid(self, name: str, uid: str | None) -> None:
        if uid is not None and not is_valid_uid(uid):
            raise QueryError(name, f"invalid {name} '{uid}' in the path")

    def add(self, key: str, value: str) -> None:
        control = key.lower()
        if control == "includefield":
            self._add_includes(key, value)
        elif control in _CONTROL_PARAMETERS:
            if control in self.controls:
                raise QueryError(key, f"'{key}' is given more than once")
            self.controls[control] = value
        else:
            self._add_attribute(key, value)

    def _add_includes(self, key: str, value: str) -> None:
        for name in (part.strip() for part in value.split(",")):
            if not name:
                continue
            if name.lower() == "all":
                self.include_all = True
                continue
            entries = self._resolve(name, f"{key}={value}")
            self.include_tags.update(entry.top_tag for entry in entries if self._at_or_above(entry))
            if not entries:
                self.header_tags.add(self._tag_path(name, f"{key}={value}").split(".")[0])

    def _add_attribute(self, key: str, value: str) -> None:
        entries = self._resolve(key, f"{key}={value}")
        usable = [entry for entry in entries if self._at_or_above(entry)]
        universal = value.strip() in ("", "*")
        if not entries or not usable:
            if universal:
                return  # an attribute the resource cannot return: nothing to return
            raise QueryError(key, self._not_searchable(key, value, entries))
        entry = next((e for e in usable if e.matchable), usable[-1])
        collected = self.keys.get(entry.tag)
        if collected is None:
            self.keys[entry.tag] = _Key(entry, key, [value])
        elif entry.vr == "UI":
            collected.values.append(value)  # repeated UID keys form one UID list
        else:
            raise QueryError(key, f"attribute '{key}' is given more than once")

    def _not_searchable(self, key: str, value: str, entries: list[Attribute]) -> str:
        if not entries:
            return f"attribute '{key}' is not supported for searching in {_quote(key, value)}"
        return (
            f"attribute '{key}' ({entries[0].level.value} level) cannot be matched when "
            f"searching for {_PLURAL[self.level]} in {_quote(key, value)}"
        )

    def _at_or_above(self, entry: Attribute) -> bool:
        """Whether ``entry`` is of the searched level or a higher one."""
        return entry.level.depth <= self.level.depth

    def _resolve(self, name: str, parameter: str) -> list[Attribute]:
        """Entries for a keyword/tag path; unknown names are an error, known DICOM
        attributes the table lacks give an empty list."""
        return self.table.by_tag(self._tag_path(name, parameter))

    def _tag_path(self, name: str, parameter: str) -> str:
        """``ggggeeee[.ggggeeee]`` for a keyword/tag path; unknown names are an error."""
        tags = []
        for segment in name.split("."):
            if _TAG.fullmatch(segment):
                tags.append(segment.upper())
                continue
            number = tag_for_keyword(segment) if segment else None
            if number is None:
                raise QueryError(name, f"unknown attribute '{name}' in '{parameter}'")
            tags.append(f"{number:08X}")
        return ".".join(tags)

    def build(self, study_uid: str | None, series_uid: str | None) -> Query:
        fuzzy = self._fuzzy()
        matches = tuple(
            match for collected in self.keys.values() if (match := _build_match(collected, fuzzy)) is not None
        )
        for match in matches:
            self._check_size(match)
        include_tags = set(self.include_tags)
        include_tags.update(c.entry.top_tag for c in self.keys.values())
        return Query(
            level=self.level,
            study_uid=study_uid,
            series_uid=series_uid,
            matches=matches,
            include_all=self.include_all,
            include_tags=frozenset(include_tags),
            header_tags=frozenset(self.header_tags),
            limit=min(self._count("limit", DEFAULT_LIMIT, minimum=1, maximum=2**63 - 1), MAX_LIMIT),
            offset=self._count("offset", 0, minimum=0, maximum=MAX_OFFSET),
            fuzzy=fuzzy,
        )

    def _check_size(self, match: Match) -> None:
        if match.kind is MatchKind.FUZZY:
            terms = sum(max(1, len(split_name_words(name))) for name in match.values)
        else:
            terms = len(match.values)
        if terms > self.max_values:
            key = self.keys[match.tag].key
            raise QueryError(key, f"'{key}' has {terms} alternatives (values, patterns, UIDs or name words); "
                                  f"at most {self.max_values} are allowed (DICOMWEB_QIDO_MAX_VALUES)")

    def _fuzzy(self) -> bool:
        value = self.controls.get("fuzzymatching")
        if value is None:
            return False
        if value.lower() not in ("true", "false"):
            raise QueryError("fuzzymatching", f"fuzzymatching must be true or false, not '{value}'")
        return value.lower() == "true"

    def _count(self, name: str, default: int, *, minimum: int, maximum: int) -> int:
        value = self.controls.get(name)
        if value is None:
            return default
        # ASCII digits only (``\d`` would take other scripts' digits), few enough for int().
        if not re.fullmatch(r"[0-9]{1,19}", value.strip()) or not minimum <= int(value) <= maximum:
            raise QueryError(
                name, f"{name} must be an integer of at least {minimum} and at most {maximum}, not '{value[:40]}'")
        return int(value)


def _build_match(collected: _Key, fuzzy: bool) -> Match | None:
    entry, key = collected.entry, collected.key
    if not entry.matchable:
        if any(value.strip() not in ("", "*") for value in collected.values):
            raise QueryError(key, f"'{key}' is return-only: use includefield={key} (or an empty value)")
        return None
    if entry.vr == "UI":
        return _uid_match(entry, key, collected.values)
    value = collected.values[0]
    if value.strip() in ("", "*"):
        return None
    if entry.vr in ("DA", "TM", "DT"):
        return _date_time_match(entry, key, value)
    alternatives = _alternatives(entry.vr, value)
    if not alternatives:
        return None
    if entry.vr in INTEGER_VRS or entry.vr in DECIMAL_VRS:
        return _number_match(entry, key, value, alternatives)
    if entry.vr == "PN":
        return _name_match(entry, key, value, alternatives, fuzzy)
    return _text_match(entry, key, value, alternatives)


def _alternatives(vr: str, value: str) -> list[str]:
    separators = r"[\\,]" if vr == "CS" else r"\\"
    return [part.strip() for part in re.split(separators, value) if part.strip()]


def literal_prefix(pattern: str) -> str:
    """The part of a wildcard pattern before its first ``*`` or ``?``: every store bounds its
    index range with it, so all of them match a pattern alike."""
    for index, char in enumerate(pattern):
        if char in "*?":
            return pattern[:index]
    return pattern


def _has_wildcard(value: str) -> bool:
    return "*" in value or "?" in value


def _uid_match(entry: Attribute, key: str, values: list[str]) -> Match | None:
    uids = [uid.strip() for value in values for uid in re.split(r"[\\,]", value) if uid.strip()]
    if not uids:
        return None
    for uid in uids:
        if not is_valid_uid(uid):
            raise QueryError(key, f"invalid UID '{uid}' in {_quote(key, ','.join(values))}")
    kind = MatchKind.UID_LIST if len(uids) > 1 else MatchKind.SINGLE
    return Match(entry.tag, entry.level, entry.vr, kind, tuple(dict.fromkeys(uids)))


def _number_match(entry: Attribute, key: str, value: str, alternatives: list[str]) -> Match:
    """Numbers are compared as numbers: alternatives (``1\\2.5``), or one range ``a-b``,
    ``a-``, ``-b`` (read like a date range; a value that is a whole number, ``-5``, is a
    single value). Keys are :func:`~indexing.values.number_key`, ordered like the numbers."""
    if len(alternatives) == 1 and (found := _number_range(entry, alternatives[0])) is not None:
        return found
    keys = []
    for alternative in alternatives:
        try:
            keys.append(number_key(entry.vr, alternative))
        except ValueError:
            raise QueryError(key, f"'{alternative}' is not a valid {entry.vr} number or range "
                                  f"in {_quote(key, value)}") from None
    return Match(entry.tag, entry.level, entry.vr, MatchKind.SINGLE, tuple(keys))


def _number_range(entry: Attribute, text: str) -> Match | None:
    """The range ``text`` names, or ``None`` when it is a single number or no range."""
    # At most 5 dashes make sense (``-1e-5--1e-3``); more is no range, and bounding them
    # keeps the split loop below from costing quadratic time on a long hostile value.
    if _number_or_none(entry.vr, text) is not None or text.count("-") > 5:
        return None
    for index in (i for i, char in enumerate(text) if char == "-"):
        left, right = text[:index].strip(), text[index + 1:].strip()
        low = _number_or_none(entry.vr, left) if left else None
        high = _number_or_none(entry.vr, right) if right else None
        if (left or right) and (low is not None or not left) and (high is not None or not right):
            return Match(entry.tag, entry.level, entry.vr, MatchKind.RANGE, lower=low, upper=high)
    return None


def _number_or_none(vr: str, text: str) -> str | None:
    try:
        return number_key(vr, text)
    except ValueError:
        return None


def _name_match(entry: Attribute, key: str, value: str, alternatives: list[str], fuzzy: bool) -> Match:
    # Only the first component group (alphabetic) of a queried name is used.
    names = tuple(person_name_key(alternative.split("=")[0]) for alternative in alternatives)
    if any(_has_wildcard(name) for name in names):
        return Match(entry.tag, entry.level, entry.vr, MatchKind.WILDCARD, names)
    kind = MatchKind.FUZZY if fuzzy else MatchKind.SINGLE
    return Match(entry.tag, entry.level, entry.vr, kind, names)


def _text_match(entry: Attribute, key: str, value: str, alternatives: list[str]) -> Match:
    if not any(_has_wildcard(alternative) for alternative in alternatives):
        return Match(entry.tag, entry.level, entry.vr, MatchKind.SINGLE, tuple(alternatives))
    if entry.vr not in WILDCARD_VRS:
        raise QueryError(key, f"wildcards are not allowed for VR {entry.vr} in {_quote(key, value)}")
    return Match(entry.tag, entry.level, entry.vr, MatchKind.WILDCARD, tuple(alternatives))


def _date_time_match(entry: Attribute, key: str, value: str) -> Match:
    text = value.strip()
    if "\\" in text:
        raise QueryError(key, f"multiple values are not supported for {entry.vr} in {_quote(key, value)}")
    whole = _bounds(entry.vr, text)
    if whole is not None:
        if entry.vr == "DA":
            return Match(entry.tag, entry.level, entry.vr, MatchKind.SINGLE, (whole[0],))
        return Match(entry.tag, entry.level, entry.vr, MatchKind.RANGE, lower=whole[0], upper=whole[1])
    for index in (i for i, char in enumerate(text) if char == "-"):
        left, right = text[:index], text[index + 1 :]
        low = _bounds(entry.vr, left) if left else None
        high = _bounds(entry.vr, right) if right else None
        if (left or right) and (low is not None or not left) and (high is not None or not right):
            return Match(
                entry.tag,
                entry.level,
                entry.vr,
                MatchKind.RANGE,
                lower=low[0] if low else None,
                upper=high[1] if high else None,
            )
    raise QueryError(key, f"invalid {_VR_NAMES[entry.vr]} or range in {_quote(key, value)}")


_VR_NAMES = {"DA": "date", "TM": "time", "DT": "date-time"}


def _bounds(vr: str, text: str) -> tuple[str, str] | None:
    if vr == "DA":
        day = parse_date(text)
        return (day, day) if day else None
    if vr == "TM":
        return time_bounds(text)
    return datetime_bounds(text)
