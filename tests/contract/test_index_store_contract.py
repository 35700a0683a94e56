"""The index store port's contract, run against every adapter (SQLite; Cosmos DB).

Idempotent adds, record lookups and their order, summaries kept right by concurrent adds
and by removals, paging; and a differential test: the same records and the same QIDO
queries give the same results from both stores, since they share the query model and
the value normalisation and must not drift apart in how they apply them.
"""

from __future__ import annotations

import asyncio
import json
import threading
import uuid
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from pydicom.uid import MRImageStorage, generate_uid

from dicomcore.layout import instance_key
from indexing.attributes import Level
from indexing.port import IndexStore, InstanceRecord, StoreCounts
from indexing.query import parse_query
from indexing.records import TRANSFER_SYNTAX_TAG, header_of
from tests.support.builders import make_dataset

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def make_store(kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> IndexStore:
    if kind == "sqlite":
        from indexing.sqlite.index_store import SqliteIndexStore

        return SqliteIndexStore(tmp_path / f"index-{uuid.uuid4().hex[:6]}.sqlite")
    from indexing.cosmos.index_store import CosmosIndexStore

    server = request.getfixturevalue("cosmos_server")
    return CosmosIndexStore.connect(server.endpoint, server.key, f"index-{uuid.uuid4().hex[:12]}")


@pytest.fixture(params=["sqlite", "cosmos"])
async def index(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[IndexStore]:
    store = make_store(request.param, tmp_path, request)
    yield store
    await store.close()


def record(**changes: Any) -> InstanceRecord:
    """An index record of :func:`builders.make_dataset` (upper-case keywords set on top)."""
    ds = make_dataset(**{key: value for key, value in changes.items() if key[0].islower()})
    for keyword, value in changes.items():
        if keyword[0].isupper():
            setattr(ds, keyword, value)
    attributes = ds.to_json_dict(bulk_data_threshold=64, bulk_data_element_handler=lambda _: "bulk/7FE00010")
    return InstanceRecord(
        study_uid=ds.StudyInstanceUID, series_uid=ds.SeriesInstanceUID, sop_uid=ds.SOPInstanceUID,
        sop_class_uid=ds.SOPClassUID,
        instance_key=instance_key(ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID),
        incarnation="inc-1", transfer_syntax_uid=ds.file_meta.TransferSyntaxUID, number_of_frames=1, size=1000,
        attributes=attributes, stored_at="2024-01-02T03:04:05Z",
    )


def value(result: dict[str, Any], tag: str) -> Any:
    return result[tag].get("Value")


async def study_summary(index: IndexStore, study: str) -> tuple[Any, ...] | None:
    found = await index.search(parse_query(Level.STUDY, [("StudyInstanceUID", study)]))
    if not found:
        return None
    (result,) = found
    return (value(result, "00201206"), value(result, "00201208"), value(result, "00080061"),
            value(result, "00080062"))


async def test_add_is_idempotent_and_records_come_back(index: IndexStore) -> None:
    first = record()
    assert await index.add_instance(first)
    assert not await index.add_instance(first)
    assert await index.get_instance(first.study_uid, first.series_uid, first.sop_uid) == first
    assert await index.get_instance_by_key(first.instance_key) == first
    assert await index.get_instance(first.study_uid, first.series_uid, "1.2.3") is None
    assert await index.get_instance_by_key("0" * 40) is None
    assert await study_summary(index, first.study_uid) == ([1], [1], ["CT"], [first.sop_class_uid])


async def test_add_instances_adds_a_batch_like_one_add_each(index: IndexStore) -> None:
    study, series = generate_uid(), generate_uid()
    known = record(study=study, series=series, instance_number=1)
    await index.add_instance(known)
    batch = [record(study=study, series=series, instance_number=2), known,
             record(study=study, series=generate_uid(), instance_number=1, Modality="MR")]
    assert await index.add_instances(batch) == [True, False, True]
    assert await index.add_instances([]) == []
    assert [await index.get_instance_by_key(each.instance_key) for each in batch] == batch
    assert await study_summary(index, study) == ([2], [3], ["CT", "MR"], [known.sop_class_uid])


async def test_list_instances_in_series_then_instance_number_order(index: IndexStore) -> None:
    study, one, two = generate_uid(), generate_uid(), generate_uid()
    records = [record(study=study, series=two, instance_number=2), record(study=study, series=one, instance_number=5),
               record(study=study, series=two, instance_number=1), record(study=study, series=one, instance_number=3)]
    for each in records:
        await index.add_instance(each)
    listed = await index.list_instances(study)
    assert [(r.series_uid, r.attributes["00200013"]["Value"][0]) for r in listed] == [
        (two, 1), (two, 2), (one, 3), (one, 5)]
    assert [r.sop_uid for r in await index.list_instances(study, one)] == [records[3].sop_uid, records[1].sop_uid]
    assert await index.list_instances(study, two, records[0].sop_uid) == [records[0]]
    assert await index.list_instances(generate_uid()) == []
    bare = await index.list_instances(study, attributes=False)
    assert [r.attributes for r in bare] == [{}] * 4
    assert [replace(r, attributes={}) for r in listed] == bare


async def test_list_headers_are_the_headers_as_json_text_in_list_order(index: IndexStore) -> None:
    study, one, two = generate_uid(), generate_uid(), generate_uid()
    records = [record(study=study, series=two, instance_number=2, patient_name="MÜLLER^ÅSA"),
               record(study=study, series=one, instance_number=5), record(study=study, series=two, instance_number=1)]
    records[0].attributes[TRANSFER_SYNTAX_TAG] = {"vr": "UI", "Value": ["1.2.840.10008.1.2.1"]}  # as new_record adds
    for each in records:
        await index.add_instance(each)
    listed = await index.list_instances(study)
    headers = await index.list_headers(study)
    assert [(h.instance_key, h.incarnation) for h in headers] == [(r.instance_key, r.incarnation) for r in listed]
    assert [json.loads(h.json) for h in headers] == [header_of(r.attributes) for r in listed]
    assert all(TRANSFER_SYNTAX_TAG not in json.loads(h.json) for h in headers)
    assert "MÜLLER^ÅSA" in json.dumps([json.loads(h.json) for h in headers], ensure_ascii=False)
    assert [h.instance_key for h in await index.list_headers(study, one)] == [records[1].instance_key]
    assert [h.instance_key for h in await index.list_headers(study, two, records[0].sop_uid)] \
        == [records[0].instance_key]
    assert await index.list_headers(generate_uid()) == []


async def test_concurrent_adds_to_one_study_keep_summaries_right(index: IndexStore) -> None:
    study = generate_uid()
    series = [generate_uid() for _ in range(3)]
    modalities = ["CT", "MR", "PT"]
    batch = [record(study=study, series=series[i % 3], modality=modalities[i % 3], instance_number=i)
             for i in range(24)]

    def in_another_thread(records: list[InstanceRecord]) -> None:
        async def add() -> None:  # its own event loop, as another worker would have
            await asyncio.gather(*(index.add_instance(each) for each in records))
            await close_loop_clients(index)

        asyncio.run(add())

    thread = threading.Thread(target=in_another_thread, args=(batch[12:],))
    thread.start()
    results = await asyncio.gather(*(index.add_instance(each) for each in batch[:12]))
    thread.join()
    assert all(results)
    assert await study_summary(index, study) == ([3], [24], modalities, [batch[0].sop_class_uid])
    per_series = await index.search(parse_query(Level.SERIES, [], study_uid=study))
    assert sorted(value(result, "00201209")[0] for result in per_series) == [8, 8, 8]


async def close_loop_clients(index: IndexStore) -> None:
    """Close what this thread's loop opened (the Cosmos store keeps a client per loop)."""
    if type(index).__name__ == "CosmosIndexStore":
        await index.close()


async def test_removal_keeps_summaries_right_and_drops_empty_entities(index: IndexStore) -> None:
    study, ct, mr = generate_uid(), generate_uid(), generate_uid()
    kept = record(study=study, series=ct, instance_number=1)
    removed = [record(study=study, series=ct, instance_number=2),
               record(study=study, series=mr, modality="MR", SOPClassUID=MRImageStorage, instance_number=1)]
    for each in [kept, *removed]:
        await index.add_instance(each)
    assert await index.remove_instances(study, mr) == [removed[1]]
    assert await index.remove_instances(study, ct, removed[0].sop_uid) == [removed[0]]
    assert await index.remove_instances(study, mr) == []
    assert await study_summary(index, study) == ([1], [1], ["CT"], [kept.sop_class_uid])
    assert [value(r, "0020000E")[0] for r in await index.search(parse_query(Level.SERIES, [], study_uid=study))] == [ct]
    assert await index.remove_instances(study) == [kept]
    assert await study_summary(index, study) is None
    assert await index.get_instance_by_key(kept.instance_key) is None
    assert await index.add_instance(kept)  # stored again after removal
    assert await study_summary(index, study) == ([1], [1], ["CT"], [kept.sop_class_uid])


async def test_counts_follow_adds_and_removals(index: IndexStore) -> None:
    assert await index.counts() == StoreCounts(studies=0, series=0, instances=0)
    study, other, ct, mr = generate_uid(), generate_uid(), generate_uid(), generate_uid()
    records = [record(study=study, series=ct, instance_number=1), record(study=study, series=ct, instance_number=2),
               record(study=study, series=mr, modality="MR", instance_number=1), record(study=other)]
    for each in records:
        await index.add_instance(each)
    await index.add_instance(records[0])  # a repeated add counts once
    assert await index.counts() == StoreCounts(studies=2, series=3, instances=4)
    await index.remove_instances(study, mr)
    assert await index.counts() == StoreCounts(studies=2, series=2, instances=3)
    await index.remove_instances(other)
    assert await index.counts() == StoreCounts(studies=1, series=1, instances=2)


async def test_paging_walks_every_result_once(index: IndexStore) -> None:
    studies = [generate_uid() for _ in range(7)]
    for study in studies:
        await index.add_instance(record(study=study, patient_id="PAGED"))
    pages = []
    for offset in range(0, 9, 3):
        query = parse_query(Level.STUDY, [("PatientID", "PAGED"), ("limit", "3"), ("offset", str(offset))])
        pages.append([value(r, "0020000D")[0] for r in await index.search(query)])
    assert pages == [studies[0:3], studies[3:6], studies[6:7]]


# -- both stores, side by side ----------------------------------------------------------------

PEOPLE = [
    dict(patient_name="Doe^John", patient_id="PAT-1", study_date="20240102", accession="ACC-1", modality="CT"),
    dict(patient_name="doe^jane^^^", patient_id="PAT-2", study_date="20240215", accession="ACC-22", modality="MR"),
    dict(patient_name="Roe^Richard Anthony", patient_id="X[1]", study_date="20231231", accession="B*1", modality="PT"),
    dict(patient_name="Smith", patient_id="pat-1", study_date="20240301", accession="acc-1", modality="CT"),
]
QUERIES: list[tuple[Level, list[tuple[str, str]]]] = [
    (Level.STUDY, []),
    (Level.STUDY, [("PatientID", "PAT-1")]),
    (Level.STUDY, [("PatientID", "PAT-1\\pat-1")]),
    (Level.STUDY, [("PatientID", "X[1]")]),
    (Level.STUDY, [("PatientID", "X[*")]),
    (Level.STUDY, [("AccessionNumber", "ACC-?")]),
    (Level.STUDY, [("AccessionNumber", "B*")]),
    (Level.STUDY, [("AccessionNumber", "*1")]),
    (Level.STUDY, [("PatientName", "DOE^J*")]),
    (Level.STUDY, [("PatientName", "doe*")]),
    (Level.STUDY, [("PatientName", "doe^jane")]),
    (Level.STUDY, [("PatientName", "Doe^John")]),
    (Level.STUDY, [("PatientName", "an"), ("fuzzymatching", "true")]),
    (Level.STUDY, [("PatientName", "ro ri"), ("fuzzymatching", "true")]),
    (Level.STUDY, [("PatientName", "j"), ("fuzzymatching", "true")]),
    (Level.STUDY, [("StudyDate", "20240101-20240228")]),
    (Level.STUDY, [("StudyDate", "-20240102")]),
    (Level.STUDY, [("StudyDate", "20240215-")]),
    (Level.STUDY, [("StudyDate", "20240301")]),
    (Level.STUDY, [("ModalitiesInStudy", "CT")]),
    (Level.STUDY, [("ModalitiesInStudy", "MR\\PT")]),
    (Level.STUDY, [("limit", "2"), ("offset", "1")]),
    (Level.SERIES, []),
    (Level.SERIES, [("Modality", "CT")]),
    (Level.SERIES, [("PatientName", "DOE*"), ("Modality", "MR")]),
    (Level.SERIES, [("ModalitiesInStudy", "PT")]),
    (Level.SERIES, [("SeriesNumber", "01")]),
    (Level.INSTANCE, []),
    (Level.INSTANCE, [("InstanceNumber", "1")]),
    (Level.INSTANCE, [("PatientID", "PAT-2"), ("InstanceNumber", "2\\3")]),
    (Level.INSTANCE, [("Rows", "4")]),
    (Level.INSTANCE, [("limit", "3"), ("offset", "2")]),
]


async def test_both_stores_answer_every_query_alike(tmp_path: Path, request: pytest.FixtureRequest) -> None:
    stores = [make_store("sqlite", tmp_path, request), make_store("cosmos", tmp_path, request)]
    try:
        for person in PEOPLE:
            study, series = generate_uid(), generate_uid()
            for instance_number in range(1, 4):
                each = record(study=study, series=series, instance_number=instance_number, **person)
                for store in stores:
                    assert await store.add_instance(each)
        matched = 0
        for level, params in QUERIES:
            query = parse_query(level, params)
            sqlite, cosmos = [await store.search(query) for store in stores]
            assert cosmos == sqlite, (level, params)
            matched += bool(sqlite)
        assert matched >= len(QUERIES) - 3  # the battery really exercises matching
    finally:
        for store in stores:
            await store.close()
