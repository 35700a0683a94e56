"""The Cosmos DB index: its container, indexing policy and document shapes.

One container, ``index``, partitioned by Study Instance UID. A study's partition holds
three kinds of document (``type``):

``study`` (id ``study``)
    The study's returnable attributes (``attrs``, from the first instance indexed, as in
    the SQLite store), its summaries (``series_count``, ``instance_count``,
    ``modalities``, ``sop_classes``) and its match keys.
``series`` (id ``series:<uid>``)
    The series' attributes, ``modality`` and ``instance_count``.
``instance`` (id ``instance:<series uid>:<sop uid>``)
    The instance's attributes and its whole :class:`~indexing.port.InstanceRecord`.

So everything a study-scoped request needs (the series of a study, the instances of a
series, a series' metadata) is one single-partition query or point read, and an
instance's id makes a second index write of the same UIDs fail atomically (409).

Match keys: ``m`` maps a matchable tag (or ``sequence.tag`` path) to the keys
:mod:`indexing.values` makes of its values (the same keys the SQLite store compares),
and ``w`` maps a person-name tag to its name words (fuzzy matching). A series document
also carries its study's header keys, and an instance document its series' and study's,
so a cross-study search at any level is one query over one document type, served by the
indexes on ``/m/*`` and ``/w/*``. Only the computed study keys (Modalities and SOP
Classes in Study), which change after the copies are made, live on the study alone.

``pos`` orders results: the time the entity was first indexed plus its UID, a stable
total order that paging by keyset (``pos > last``) relies on.

The indexing policy below is the one infra/ deploys: ``python -m indexing.cosmos.containers``
writes ``infra/cosmos-containers.json`` (both Cosmos containers), and a test checks the
file agrees with the code.
"""

from __future__ import annotations

from typing import Any

from indexing.attributes import AttributeTable, Level
from indexing.cosmos.database import ContainerSpec
from indexing.port import DicomJson, InstanceRecord
from indexing.query import SERIES_UID_TAG, SOP_UID_TAG, STUDY_UID_TAG
from indexing.results import instance_number
from indexing.values import element_values, index_keys, name_words

SOP_CLASS_TAG = "00080016"
MODALITY_TAG = "00080060"
MODALITIES_IN_STUDY_TAG = "00080061"
SOP_CLASSES_IN_STUDY_TAG = "00080062"

CONTAINER = ContainerSpec(
    name="index",
    partition_key="/study_uid",
    indexing_policy={
        "indexingMode": "consistent",
        "automatic": True,
        "includedPaths": [
            {"path": "/type/?"},
            {"path": "/study_uid/?"},
            {"path": "/series_uid/?"},
            {"path": "/sop_uid/?"},
            {"path": "/instance_key/?"},
            {"path": "/instance_count/?"},
            {"path": "/pos/?"},
            {"path": "/m/*"},
            {"path": "/w/*"},
        ],
        # Attributes and records are returned, never searched: not indexing them keeps
        # writes cheap (a header can be tens of kilobytes).
        "excludedPaths": [{"path": "/*"}],
        # Every search filters on the document type and orders by position.
        "compositeIndexes": [
            [{"path": "/type", "order": "ascending"}, {"path": "/pos", "order": "ascending"}],
        ],
    },
)

STUDY_ID = "study"


def series_id(series_uid: str) -> str:
    return f"series:{series_uid}"


def instance_id(series_uid: str, sop_uid: str) -> str:
    return f"instance:{series_uid}:{sop_uid}"


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
    (a search result carries no bulk data)."""
    kept: DicomJson = {}
    for entry in table.stored(level):
        element = dataset.get(entry.top_tag)
        if isinstance(element, dict) and "BulkDataURI" not in element and "InlineBinary" not in element:
            kept[entry.top_tag] = element
    return kept


Keys = dict[str, list[str]]


def match_keys(table: AttributeTable, level: Level, dataset: DicomJson) -> tuple[Keys, Keys]:
    """``m`` and ``w`` of ``level``'s header attributes (see the module docstring)."""
    keys: dict[str, list[str]] = {}
    words: dict[str, list[str]] = {}
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


def study_document(table: AttributeTable, record: InstanceRecord, dataset: DicomJson, pos: str) -> dict[str, Any]:
    keys, words = match_keys(table, Level.STUDY, dataset)
    return {
        "id": STUDY_ID, "type": "study", "study_uid": record.study_uid, "pos": pos,
        "attrs": level_json(table, Level.STUDY, dataset), "m": keys, "w": words,
        "series_count": 0, "instance_count": 0, "modalities": [], "sop_classes": [],
    }


def series_document(
    table: AttributeTable, record: InstanceRecord, dataset: DicomJson, pos: str, study: dict[str, Any]
) -> dict[str, Any]:
    keys, words = match_keys(table, Level.SERIES, dataset)
    modality = next(iter(element_values(dataset, (MODALITY_TAG,))), None)
    return {
        "id": series_id(record.series_uid), "type": "series", "study_uid": record.study_uid,
        "series_uid": record.series_uid, "pos": pos, "attrs": level_json(table, Level.SERIES, dataset),
        "m": {**header_keys(table, study["m"]), **keys}, "w": {**study["w"], **words},
        "modality": modality, "instance_count": 0,
    }


def instance_document(
    table: AttributeTable, record: InstanceRecord, dataset: DicomJson, pos: str, series: dict[str, Any]
) -> dict[str, Any]:
    keys, words = match_keys(table, Level.INSTANCE, dataset)
    return {
        "id": instance_id(record.series_uid, record.sop_uid), "type": "instance", "study_uid": record.study_uid,
        "series_uid": record.series_uid, "sop_uid": record.sop_uid, "sop_class_uid": record.sop_class_uid,
        "instance_key": record.instance_key, "instance_number": instance_number(dataset), "pos": pos,
        "series_pos": series["pos"], "attrs": level_json(table, Level.INSTANCE, dataset),
        "m": {**series["m"], **keys}, "w": {**series["w"], **words}, "record": record_json(record),
    }


def header_keys(table: AttributeTable, keys: dict[str, list[str]]) -> dict[str, list[str]]:
    """``keys`` without the computed ones (which only the study document keeps current)."""
    return {tag: values for tag, values in keys.items() if not any(e.computed for e in table.by_tag(tag))}


def record_json(record: InstanceRecord) -> dict[str, Any]:
    return {
        "study_uid": record.study_uid, "series_uid": record.series_uid, "sop_uid": record.sop_uid,
        "sop_class_uid": record.sop_class_uid, "instance_key": record.instance_key,
        "incarnation": record.incarnation, "transfer_syntax_uid": record.transfer_syntax_uid,
        "number_of_frames": record.number_of_frames, "size": record.size, "attributes": record.attributes,
        "stored_at": record.stored_at,
    }
