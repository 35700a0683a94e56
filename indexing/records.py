"""What the index holds for a stored instance, and the change-feed entries it commits.

These rules are the same on every store; the adapters (:mod:`indexing.sqlite`,
:mod:`indexing.cosmos`) only translate them to their storage: the record, the identity
written into its header, each level's returnable JSON and match keys, the series'
modality, the order of a study's instances, and the feed entries (their ids and states).
Study and series summaries: :mod:`indexing.summaries`.
"""

from __future__ import annotations

from typing import Any

from changefeed.port import Action, ChangeEntry, State
from dicomcore.clock import utc_now
from dicomcore.instance import ParsedInstance
from dicomcore.validation import InstanceUids
from indexing.attributes import AttributeTable, Level
from indexing.port import DicomJson, InstanceRecord
from indexing.query import SERIES_UID_TAG, SOP_UID_TAG, STUDY_UID_TAG
from indexing.values import element_values, index_keys, name_words

SOP_CLASS_TAG = "00080016"
MODALITY_TAG = "00080060"

Keys = dict[str, list[str]]
"""Matchable tag (or ``sequence.tag`` path) → its normalised keys (or name words)."""

TRANSFER_SYNTAX_TAG = "00020010"

ADDED_TO_HEADER = (TRANSFER_SYNTAX_TAG,)
"""What :func:`new_record` adds to the header's DICOM JSON (File Meta values a search can
return): left out where the header itself is returned (WADO metadata)."""


def new_record(
    parsed: ParsedInstance, uids: InstanceUids, key: str, incarnation: str, attributes: dict[str, Any],
    sha256: str = "",
) -> InstanceRecord:
    """The record of a stored copy of an instance (``incarnation`` names this copy).

    Its attributes gain the File Meta values a search can return (Transfer Syntax UID:
    whole-slide clients ask for it), which the header's DICOM JSON leaves out.
    """
    return InstanceRecord(
        study_uid=uids.study,
        series_uid=uids.series,
        sop_uid=uids.sop,
        sop_class_uid=uids.sop_class,
        instance_key=key,
        incarnation=incarnation,
        transfer_syntax_uid=parsed.transfer_syntax_uid,
        number_of_frames=parsed.frames.number_of_frames,
        size=parsed.size,
        attributes={**attributes, TRANSFER_SYNTAX_TAG: {"vr": "UI", "Value": [parsed.transfer_syntax_uid]}},
        stored_at=utc_now(),
        sha256=sha256,
    )


def header_of(attributes: DicomJson) -> DicomJson:
    """The header's DICOM JSON as STOW derived it (the instance's metadata), from a record's
    attributes."""
    return {tag: element for tag, element in attributes.items() if tag not in ADDED_TO_HEADER}


def record_from_json(values: dict[str, Any]) -> InstanceRecord:
    """A record as stored by any adapter (fields added later default, older ones are ignored)."""
    known = InstanceRecord.__dataclass_fields__
    return InstanceRecord(**{name: value for name, value in values.items() if name in known})


def with_identity(record: InstanceRecord) -> DicomJson:
    """The header with the record's UIDs written in, so an entity is always findable by
    the UIDs it is stored under, even if the header disagrees or lacks them."""
    return {
        **record.attributes,
        STUDY_UID_TAG: {"vr": "UI", "Value": [record.study_uid]},
        SERIES_UID_TAG: {"vr": "UI", "Value": [record.series_uid]},
        SOP_UID_TAG: {"vr": "UI", "Value": [record.sop_uid]},
        SOP_CLASS_TAG: {"vr": "UI", "Value": [record.sop_class_uid]},
    }


def level_json(table: AttributeTable, level: Level, dataset: DicomJson) -> DicomJson:
    """The returnable header attributes of ``level``; bulk data references are dropped
    (a search result carries no bulk data). A study's or series' JSON is taken from the
    first instance indexed into it."""
    kept: DicomJson = {}
    for entry in table.stored(level):
        element = dataset.get(entry.top_tag)
        if isinstance(element, dict) and "BulkDataURI" not in element and "InlineBinary" not in element:
            kept[entry.top_tag] = element
    return kept


def match_keys(table: AttributeTable, level: Level, dataset: DicomJson) -> tuple[Keys, Keys]:
    """The match keys of ``level``'s header attributes (made by :mod:`indexing.values`, so
    every store compares the same keys) and the words of its person names (fuzzy matching)."""
    keys: Keys = {}
    words: Keys = {}
    for entry in table.stored(level):
        if not entry.matchable:
            continue
        raw = element_values(dataset, entry.path)
        found = index_keys(entry.vr, raw)
        if found:
            keys[entry.tag] = found
        if entry.vr == "PN":
            name = name_words(raw)
            if name:
                words[entry.tag] = name
    return keys, words


def series_modality(dataset: DicomJson) -> str | None:
    """The series' Modality, from its first instance (Modalities in Study is made of these)."""
    return next(iter(element_values(dataset, (MODALITY_TAG,))), None)


def instance_order(series_position: Any, instance_number: int | None, sop_uid: str) -> tuple[Any, ...]:
    """A study's instances are listed by series (in the order the series were first
    indexed), then Instance Number (instances without one last), then SOP Instance UID."""
    return (series_position, instance_number is None, instance_number or 0, sop_uid)


def entry_id(instance_key: str, incarnation: str, action: Action) -> str:
    """One entry per action on one stored copy: appending it again is a no-op."""
    return f"{instance_key}:{incarnation}:{action.value}"


def change_entry(record: InstanceRecord, action: Action) -> ChangeEntry:
    """The feed entry for ``action`` on this stored copy; its id makes appending it idempotent."""
    return ChangeEntry(
        entry_id=entry_id(record.instance_key, record.incarnation, action),
        action=action,
        study_uid=record.study_uid,
        series_uid=record.series_uid,
        sop_uid=record.sop_uid,
        sop_class_uid=record.sop_class_uid,
        instance_key=record.instance_key,
        incarnation=record.incarnation,
        state=entry_state(action),
    )


def entry_state(action: Action) -> State:
    """A new entry's state; a delete entry also marks the instance's earlier entries deleted."""
    return State.DELETED if action is Action.DELETE else State.CURRENT


def next_timestamp(now: str, last: str | None) -> str:
    """An entry's timestamp never precedes the one before it, so time order and sequence
    order agree whatever the writers' clocks say."""
    return max(now, last or "")
