"""Extended query tags: attributes an operator makes searchable beyond the built-in table.

A tag definition is data (:class:`ExtendedTag`); :func:`parse_entries` validates what a
client posts, and :func:`extend_table` adds the definitions to the built-in
:class:`~indexing.attributes.AttributeTable`, so indexing (:mod:`indexing.records`) and
matching (:mod:`indexing.query`) treat an extended tag exactly like a built-in attribute
of its VR: one set of matching rules.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from enum import StrEnum
from typing import Any

from pydicom.datadict import dictionary_VR, keyword_for_tag, tag_for_keyword

from dicomcore.clock import utc_now
from indexing.attributes import MATCH, Attribute, AttributeTable, Level, standard_table
from indexing.port import InstanceRecord
from indexing.values import (
    DECIMAL_VRS,
    INTEGER_VRS,
    datetime_bounds,
    element_values,
    number_key,
    parse_date,
    time_bounds,
)

SUPPORTED_VRS = frozenset(
    ["AE", "AS", "CS", "DA", "DS", "DT", "FD", "FL", "IS", "LO", "PN", "SH", "SL", "SS", "TM", "UI", "UL", "US"])
MAX_TAGS = 128
MAX_DEPTH = 3
"""Elements in a tag path: the attribute and at most two sequences around it."""
_HEX_TAG = re.compile(r"[0-9A-Fa-f]{8}")


class TagStatus(StrEnum):
    ADDING = "adding"
    READY = "ready"
    DELETING = "deleting"


class QueryStatus(StrEnum):
    ENABLED = "enabled"
    DISABLED = "disabled"


class ExtendedTagError(ValueError):
    """A definition that cannot be accepted; the message names the entry and the reason."""


@dataclass(frozen=True)
class ExtendedTag:
    path: str
    """``ggggeeee`` upper-case hex; inside sequences ``ssssssss.ggggeeee``."""
    vr: str
    level: Level
    private_creator: str | None = None
    status: TagStatus = TagStatus.ADDING
    query_status: QueryStatus = QueryStatus.ENABLED
    operation_id: str | None = None
    error_count: int = 0

    @property
    def keyword(self) -> str:
        """``Sequence.Keyword`` (the tag where an element has no keyword)."""
        return ".".join(keyword_for_tag(int(tag, 16)) or tag for tag in self.tags)

    @property
    def tags(self) -> tuple[str, ...]:
        """The tags from the dataset root to the attribute."""
        return tuple(self.path.split("."))

    @property
    def indexed(self) -> bool:
        """New instances carry its values (while it is added and once it is ready)."""
        return self.status in (TagStatus.ADDING, TagStatus.READY)

    @property
    def searchable(self) -> bool:
        return self.status is TagStatus.READY

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["level"], data["status"], data["query_status"] = self.level.value, self.status.value, \
            self.query_status.value
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ExtendedTag:
        return cls(**{**data, "level": Level(data["level"]), "status": TagStatus(data["status"]),
                      "query_status": QueryStatus(data["query_status"])})


def parse_path(path: str) -> str:
    """``ggggeeee[.ggggeeee...]`` for a tag path given as 8 hex digits or a keyword per
    element, elements separated by dots (PS3.18 8.3.4.1: ``00400275.00401001`` or
    ``RequestAttributesSequence.RequestedProcedureID``)."""
    return ".".join(_parse_element(element) for element in path.split("."))


def _parse_element(element: str) -> str:
    if _HEX_TAG.fullmatch(element):
        return element.upper()
    number = tag_for_keyword(element) if element else None
    if number is None:
        raise ExtendedTagError(f"'{element}' is neither 8 hex digits nor a DICOM keyword")
    return f"{number:08X}"


def _is_private(tag: str) -> bool:
    return int(tag[:4], 16) % 2 == 1


def parse_entries(entries: Any, existing: int = 0) -> list[ExtendedTag]:
    """The definitions of a POST body (a JSON array); refuses the whole request on one bad entry."""
    if not isinstance(entries, list) or not entries:
        raise ExtendedTagError("the body must be a non-empty JSON array of {path, vr, privateCreator, level}")
    tags = [_parse_entry(index, entry) for index, entry in enumerate(entries)]
    seen: set[str] = set()
    for tag in tags:
        if tag.path in seen:
            raise ExtendedTagError(f"tag {tag.path} is given more than once in the request")
        seen.add(tag.path)
    if existing + len(tags) > MAX_TAGS:
        raise ExtendedTagError(f"at most {MAX_TAGS} extended query tags are allowed ({existing} exist)")
    return tags


def _parse_entry(index: int, entry: Any) -> ExtendedTag:
    name = f"entry {index}"
    if not isinstance(entry, dict) or not isinstance(entry.get("path"), str):
        raise ExtendedTagError(f"{name}: an object with a string 'path' is required")
    name = f"entry {index} ('{entry['path']}')"
    try:
        path = parse_path(entry["path"])
    except ExtendedTagError as exc:
        raise ExtendedTagError(f"{name}: {exc}") from None
    level = _level(name, entry.get("level"))
    vr, creator = entry.get("vr"), entry.get("privateCreator")
    elements = path.split(".")
    private = any(_is_private(element) for element in elements)
    if private and (not isinstance(creator, str) or not creator.strip()):
        raise ExtendedTagError(f"{name}: a private tag needs 'privateCreator'")
    if not private and creator is not None:
        raise ExtendedTagError(f"{name}: 'privateCreator' is only for private tags")
    _check_sequences(name, elements)
    leaf = elements[-1]
    if _is_private(leaf):
        if not isinstance(vr, str):
            raise ExtendedTagError(f"{name}: a private tag needs 'vr'")
    else:
        vr = _dictionary_vr(name, leaf, vr)
    vr = vr.upper()
    if vr == "SQ":
        raise ExtendedTagError(f"{name}: a sequence (SQ) cannot be searched itself; "
                               "name an attribute inside it (sequence.attribute)")
    if vr not in SUPPORTED_VRS:
        raise ExtendedTagError(f"{name}: VR {vr} is not supported (supported: {' '.join(sorted(SUPPORTED_VRS))})")
    if any(attribute.matchable for attribute in standard_table().by_tag(path)):
        raise ExtendedTagError(f"{name}: the attribute is already searchable by default")
    return ExtendedTag(path, vr, level, creator if private else None)


def _check_sequences(name: str, elements: list[str]) -> None:
    """Every element but the last must be a sequence: SQ in the dictionary, or private
    (a private element's VR is not known here; its values are read only through items)."""
    if len(elements) > MAX_DEPTH:
        raise ExtendedTagError(f"{name}: a path may have at most {MAX_DEPTH} elements "
                               f"(sequences nested {MAX_DEPTH - 1} deep)")
    for element in elements[:-1]:
        if _is_private(element):
            continue
        try:
            known = dictionary_VR(int(element, 16))
        except KeyError:
            raise ExtendedTagError(f"{name}: tag {element} is not in the DICOM dictionary") from None
        if known != "SQ":
            raise ExtendedTagError(f"{name}: {element} is not a sequence (VR {known}); "
                                   "only the last element of a path may be a value")


def _level(name: str, level: Any) -> Level:
    try:
        return Level(str(level).lower())
    except ValueError:
        raise ExtendedTagError(f"{name}: 'level' must be study, series or instance") from None


def _dictionary_vr(name: str, path: str, vr: Any) -> str:
    try:
        known = dictionary_VR(int(path, 16))
    except KeyError:
        raise ExtendedTagError(f"{name}: tag {path} is not in the DICOM dictionary") from None
    if vr is not None and (not isinstance(vr, str) or vr.upper() not in known.split(" or ")):
        raise ExtendedTagError(f"{name}: VR {vr} does not match the dictionary's {known}")
    return vr if isinstance(vr, str) else known.split(" or ")[0]


def extend_table(tags: Iterable[ExtendedTag], *, searchable_only: bool = False) -> AttributeTable:
    """The built-in table plus the tags that are indexed (or, for queries, searchable)."""
    base = standard_table()
    chosen = [tag for tag in tags if (tag.searchable if searchable_only else tag.indexed)]
    extra = [Attribute(tag.keyword, tag.path, tag.vr, tag.level, MATCH) for tag in chosen
             if not any(entry.matchable for entry in base.by_tag(tag.path))]
    return AttributeTable([*base.entries, *extra])


# PS3.5 Table 6.2-1: the longest value of each text VR (characters, per value).
_MAX_LENGTH = {"AE": 16, "AS": 4, "CS": 16, "DA": 8, "DS": 16, "IS": 12, "LO": 64, "PN": 64 * 3 + 2,
               "SH": 16, "TM": 14, "UI": 64, "DT": 26}


def invalid_value(vr: str, values: Iterable[Any]) -> str | None:
    """Why a stored value cannot be indexed for ``vr`` (a bad date, a number that does not
    parse, a value too long), or ``None`` when every value is fine. The message names the
    VR and the problem only, never the value (it may be patient data)."""
    for value in values:
        text = str(value).strip() if not isinstance(value, dict) else ""
        if len(text) > _MAX_LENGTH.get(vr, len(text)):
            return f"a value is longer than {_MAX_LENGTH[vr]} characters, the limit of {vr}"
        if vr == "DA" and parse_date(text) is None:
            return "a value is not a valid date (YYYYMMDD)"
        if vr == "TM" and time_bounds(text.replace(":", "")) is None:
            return "a value is not a valid time (HHMMSS.FFFFFF)"
        if vr == "DT" and datetime_bounds(text) is None:
            return "a value is not a valid date-time"
        if vr in INTEGER_VRS or vr in DECIMAL_VRS:
            try:
                number_key(vr, text)
            except ValueError:
                return f"a value is not a valid {vr} number"
    return None


def value_errors(tags: Iterable[ExtendedTag], record: InstanceRecord) -> list[tuple[ExtendedTag, dict[str, str]]]:
    """The errors of ``record`` for ``tags`` (a value invalid for the tag's VR, in any
    sequence item): what the reindex records, and the stores record for instances
    stored while a tag is indexed. Each error is the JSON ``GET …/errors`` lists."""
    found = []
    for tag in tags:
        problem = invalid_value(tag.vr, element_values(record.attributes, tag.tags))
        if problem:
            found.append((tag, {"studyInstanceUid": record.study_uid, "seriesInstanceUid": record.series_uid,
                                "sopInstanceUid": record.sop_uid, "createdTime": utc_now(),
                                "errorMessage": problem}))
    return found
