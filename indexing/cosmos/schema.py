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
    The instance's attributes, its whole :class:`~indexing.port.InstanceRecord` and its
    create entry (``entry``), so that reconciliation can append the entry if a crash came
    between the document and the feed. (Older documents carry ``pending`` instead, cleared
    once the entry was appended.)
``tombstone`` (id ``tombstone:<series uid>:<sop uid>``)
    A deleted instance (its record, ``state`` pending or done, ``owner``, ``claimed_at``):
    written before the instance document is removed and kept after its files are gone,
    so no late blob event or repair indexes it again.

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

from changefeed.port import ChangeEntry
from indexing.attributes import AttributeTable, Level
from indexing.cosmos.database import ContainerSpec
from indexing.port import DicomJson, InstanceRecord
from indexing.records import level_json, match_keys, series_modality
from indexing.results import instance_number

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
            {"path": "/pending/?"},
            {"path": "/state/?"},
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


def tombstone_id(series_uid: str, sop_uid: str) -> str:
    return f"tombstone:{series_uid}:{sop_uid}"


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
    modality = series_modality(dataset)
    return {
        "id": series_id(record.series_uid), "type": "series", "study_uid": record.study_uid,
        "series_uid": record.series_uid, "pos": pos, "attrs": level_json(table, Level.SERIES, dataset),
        "m": {**header_keys(table, study["m"]), **keys}, "w": {**study["w"], **words},
        "modality": modality, "instance_count": 0,
    }


def instance_document(
    table: AttributeTable, record: InstanceRecord, dataset: DicomJson, pos: str, series: dict[str, Any],
    entry: ChangeEntry,
) -> dict[str, Any]:
    keys, words = match_keys(table, Level.INSTANCE, dataset)
    return {
        "id": instance_id(record.series_uid, record.sop_uid), "type": "instance", "study_uid": record.study_uid,
        "series_uid": record.series_uid, "sop_uid": record.sop_uid, "sop_class_uid": record.sop_class_uid,
        "instance_key": record.instance_key, "instance_number": instance_number(dataset), "pos": pos,
        "series_pos": series["pos"], "attrs": level_json(table, Level.INSTANCE, dataset),
        "m": {**series["m"], **keys}, "w": {**series["w"], **words}, "record": record_json(record),
        "entry": entry.to_dict(),
    }


def tombstone_document(record: InstanceRecord, owner: str, claimed_at: float) -> dict[str, Any]:
    return {
        "id": tombstone_id(record.series_uid, record.sop_uid), "type": "tombstone", "study_uid": record.study_uid,
        "series_uid": record.series_uid, "sop_uid": record.sop_uid, "instance_key": record.instance_key,
        "state": "pending", "owner": owner, "claimed_at": claimed_at, "record": record_json(record),
        "m": {}, "w": {},  # searches filter on the type, but the test server evaluates their keys anyway
    }


def header_keys(table: AttributeTable, keys: dict[str, list[str]]) -> dict[str, list[str]]:
    """``keys`` without the computed ones (which only the study document keeps current)."""
    return {tag: values for tag, values in keys.items() if not any(e.computed for e in table.by_tag(tag))}


def record_json(record: InstanceRecord) -> dict[str, Any]:
    return dict(vars(record))
