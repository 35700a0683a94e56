"""The SQLite index store: records, summaries under concurrency, and every kind of search."""

from __future__ import annotations

import asyncio
import re
import sqlite3
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pydicom.uid import MRImageStorage, generate_uid

from indexing.port import InstanceRecord
from indexing.query import Level, parse_query
from indexing.sqlite.index_store import SqliteIndexStore
from indexing.sqlite.search import compile_search
from tests.qido.qido_records import make_record, record_of
from tests.support.builders import make_dataset

STUDY, SERIES, INSTANCE = Level.STUDY, Level.SERIES, Level.INSTANCE


pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteIndexStore]:
    index = SqliteIndexStore(tmp_path / "index.sqlite")
    yield index
    await index.close()


@pytest.fixture
async def u(store: SqliteIndexStore) -> dict[str, str]:
    """The search population's UIDs by name (see :func:`_population`)."""
    return await _population(store)


def first(result: dict[str, Any], tag: str) -> Any:
    return result[tag]["Value"][0]


def values(result: dict[str, Any], tag: str) -> list[Any]:
    return result.get(tag, {}).get("Value", [])


async def search(store: SqliteIndexStore, level: Level, *params: tuple[str, str], **path: str) -> list[dict]:
    return await store.search(parse_query(level, list(params), **path))  # type: ignore[arg-type]


async def uids(store: SqliteIndexStore, level: Level, *params: tuple[str, str], **path: str) -> list[str]:
    tag = {STUDY: "0020000D", SERIES: "0020000E", INSTANCE: "00080018"}[level]
    return [first(result, tag) for result in await search(store, level, *params, **path)]


def run(coroutine: Any) -> Any:
    return asyncio.run(coroutine)


# -- records ------------------------------------------------------------------------------


async def test_add_then_get_by_uids_and_key(store: SqliteIndexStore) -> None:
    record = make_record()
    assert await store.add_instance(record)
    assert await store.get_instance(record.study_uid, record.series_uid, record.sop_uid) == record
    assert await store.get_instance_by_key(record.instance_key) == record
    assert await store.get_instance(record.study_uid, record.series_uid, "1.2.3") is None
    assert await store.get_instance_by_key("missing") is None


async def test_duplicate_key_is_refused_and_changes_nothing(store: SqliteIndexStore) -> None:
    record = make_record()
    assert await store.add_instance(record)
    again = InstanceRecord(**{**record.__dict__, "incarnation": "inc-2"})
    assert not await store.add_instance(again)
    assert (await store.get_instance_by_key(record.instance_key)).incarnation == "inc-1"  # type: ignore[union-attr]
    assert first((await search(store, STUDY))[0], "00201208") == 1


async def test_same_uids_under_another_key_is_refused(store: SqliteIndexStore) -> None:
    record = make_record()
    await store.add_instance(record)
    assert not await store.add_instance(InstanceRecord(**{**record.__dict__, "instance_key": "other"}))


async def test_list_instances_in_series_then_instance_number_order(store: SqliteIndexStore) -> None:
    study, series_a, series_b = generate_uid(), generate_uid(), generate_uid()
    for series, number in [(series_b, 2), (series_a, 3), (series_b, 1), (series_a, 1)]:
        await store.add_instance(make_record(study=study, series=series, instance_number=number))
    listed = await store.list_instances(study)
    assert [(r.series_uid, r.attributes["00200013"]["Value"][0]) for r in listed] == [
        (series_b, 1),
        (series_b, 2),
        (series_a, 1),
        (series_a, 3),
    ]
    assert len(await store.list_instances(study, series_a)) == 2
    one = listed[0]
    assert await store.list_instances(study, one.series_uid, one.sop_uid) == [one]
    assert await store.list_instances(generate_uid()) == []


async def test_remove_instance_series_and_study_keeps_summaries_right(store: SqliteIndexStore) -> None:
    study, ct, mr = generate_uid(), generate_uid(), generate_uid()
    ct_records = [make_record(study=study, series=ct, modality="CT", instance_number=n) for n in (1, 2)]
    mr_record = record_of(_mr(study, mr))
    for record in [*ct_records, mr_record]:
        await store.add_instance(record)
    summary = (await search(store, STUDY))[0]
    assert values(summary, "00080061") == ["CT", "MR"]
    assert values(summary, "00080062") == [ct_records[0].sop_class_uid, MRImageStorage]
    assert (first(summary, "00201206"), first(summary, "00201208")) == (2, 3)

    removed = await store.remove_instances(study, ct, ct_records[0].sop_uid)
    assert removed == [ct_records[0]]
    summary = (await search(store, STUDY))[0]
    assert (first(summary, "00201206"), first(summary, "00201208")) == (2, 2)
    assert first((await search(store, SERIES, study_uid=study))[0], "00201209") == 1

    assert await store.remove_instances(study, mr) == [mr_record]
    summary = (await search(store, STUDY))[0]
    assert values(summary, "00080061") == ["CT"] and values(summary, "00080062") == [ct_records[0].sop_class_uid]
    assert (first(summary, "00201206"), first(summary, "00201208")) == (1, 1)
    assert await uids(store, STUDY, ("ModalitiesInStudy", "MR")) == []
    assert await uids(store, SERIES, ("Modality", "MR")) == []

    assert await store.remove_instances(study) == [ct_records[1]]
    assert await search(store, STUDY) == [] and await search(store, INSTANCE) == []
    assert await uids(store, STUDY, ("PatientID", "PAT-1")) == []
    assert await store.remove_instances(study) == []


async def test_removed_instance_can_be_indexed_again(store: SqliteIndexStore) -> None:
    record = make_record()
    await store.add_instance(record)
    await store.remove_instances(record.study_uid)
    assert await store.add_instance(record)
    assert len(await search(store, INSTANCE)) == 1


def _mr(study: str, series: str, **attributes: Any) -> Dataset:
    ds = make_dataset(study=study, series=series, modality="MR")
    ds.SOPClassUID = MRImageStorage
    for keyword, value in attributes.items():
        setattr(ds, keyword, value)
    return ds


# -- concurrency --------------------------------------------------------------------------


def test_concurrent_adds_from_threads_and_stores_keep_counts(tmp_path: Path) -> None:
    """Two stores on one file (as two server processes would be), each used from
    several threads, add instances of one study across series of two modalities."""
    database = tmp_path / "index.sqlite"
    stores = [SqliteIndexStore(database), SqliteIndexStore(database)]
    study = generate_uid()
    series = [(generate_uid(), modality) for modality in ("CT", "MR", "CT", "PT")]
    records = [
        make_record(study=study, series=uid, modality=modality, instance_number=n)
        for n in range(12)
        for uid, modality in series
    ]

    def add(index: int) -> bool:
        return run(stores[index % 2].add_instance(records[index % len(records)]))

    with ThreadPoolExecutor(max_workers=16) as pool:
        added = list(pool.map(add, range(len(records) * 2)))  # every record sent twice

    assert sum(added) == len(records)
    summary = run(stores[0].search(parse_query(STUDY, [])))[0]
    assert (first(summary, "00201206"), first(summary, "00201208")) == (4, 48)
    assert values(summary, "00080061") == ["CT", "MR", "PT"]
    series_counts = [first(r, "00201209") for r in run(stores[1].search(parse_query(SERIES, [])))]
    assert series_counts == [12, 12, 12, 12]
    for index in stores:
        run(index.close())


async def test_concurrent_adds_and_removes_on_one_store(store: SqliteIndexStore) -> None:
    study = generate_uid()
    records = [make_record(study=study, series=generate_uid(), modality=m) for m in ("CT", "MR") * 10]
    await asyncio.gather(*(store.add_instance(record) for record in records))
    await asyncio.gather(*(store.remove_instances(study, r.series_uid) for r in records[:10]))
    summary = (await search(store, STUDY))[0]
    assert (first(summary, "00201206"), first(summary, "00201208")) == (10, 10)
    assert values(summary, "00080061") == ["CT", "MR"]


# -- search -------------------------------------------------------------------------------


async def _population(store: SqliteIndexStore) -> dict[str, str]:
    """Three studies; the returned names map to UIDs for assertions."""
    doe, roe, smith = generate_uid(), generate_uid(), generate_uid()
    doe_ct, doe_mr, roe_ct, smith_us = (generate_uid() for _ in range(4))
    await store.add_instance(
        make_record(
            study=doe,
            series=doe_ct,
            patient_name="Doe^John",
            patient_id="P-1",
            study_date="20240102",
            accession="ACC[1]",
            StudyTime="101500",
            instance_number=1,
            AcquisitionDateTime="20240102101500.25+0100",
        )
    )
    await store.add_instance(make_record(study=doe, series=doe_ct, patient_name="Doe^John", instance_number=2))
    ra = Dataset()
    ra.ScheduledProcedureStepID, ra.RequestedProcedureID = "SPS-9", "RP-9"
    await store.add_instance(
        record_of(
            _mr(
                doe,
                doe_mr,
                PatientName="Doe^John",
                RequestAttributesSequence=Sequence([ra]),
                BodyPartExamined="HEAD",
            )
        )
    )
    await store.add_instance(
        make_record(
            study=roe,
            series=roe_ct,
            patient_name="Roe^Jane^Q",
            patient_id="P-2",
            study_date="20240215",
            accession="ACC2",
            StudyTime="231000",
            ReferringPhysicianName="House^Gregory",
        )
    )
    await store.add_instance(
        make_record(
            study=smith,
            series=smith_us,
            patient_name="Smith^Johnny",
            patient_id="P-3",
            study_date="20231231",
            modality="US",
            accession="X-1",
            StudyTime="0800",
            instance_number=7,
        )
    )
    return {"doe": doe, "roe": roe, "smith": smith, "doe_ct": doe_ct, "doe_mr": doe_mr, "roe_ct": roe_ct}


async def test_search_all_in_insertion_order(store: SqliteIndexStore, u: dict[str, str]) -> None:
    assert await uids(store, STUDY) == [u["doe"], u["roe"], u["smith"]]
    assert len(await search(store, SERIES)) == 4 and len(await search(store, INSTANCE)) == 5


async def test_single_value_matching(store: SqliteIndexStore, u: dict[str, str]) -> None:
    assert await uids(store, STUDY, ("PatientID", "P-2")) == [u["roe"]]
    assert await uids(store, STUDY, ("AccessionNumber", "ACC[1]")) == [u["doe"]]
    assert await uids(store, STUDY, ("PatientID", "p-2")) == []  # LO is case-sensitive
    assert await uids(store, STUDY, ("StudyInstanceUID", u["smith"])) == [u["smith"]]


async def test_person_names_are_case_insensitive(store: SqliteIndexStore, u: dict[str, str]) -> None:
    assert await uids(store, STUDY, ("PatientName", "doe^john")) == [u["doe"]]
    assert await uids(store, STUDY, ("ReferringPhysicianName", "HOUSE^gregory")) == [u["roe"]]
    assert await uids(store, STUDY, ("PatientName", "doe")) == []  # not a prefix match


async def test_wildcard_matching(store: SqliteIndexStore, u: dict[str, str]) -> None:
    assert await uids(store, STUDY, ("PatientName", "*o?^J*")) == [u["doe"], u["roe"]]
    assert await uids(store, STUDY, ("PatientName", "smith*")) == [u["smith"]]
    assert await uids(store, STUDY, ("AccessionNumber", "ACC[*")) == [u["doe"]]  # "[" is literal
    assert await uids(store, STUDY, ("AccessionNumber", "acc*")) == []  # case-sensitive
    assert await uids(store, STUDY, ("AccessionNumber", "ACC?")) == [u["roe"]]


async def test_uid_list_matching(store: SqliteIndexStore, u: dict[str, str]) -> None:
    found = await uids(store, STUDY, ("StudyInstanceUID", f"{u['smith']},{u['doe']},1.2.3"))
    assert found == [u["doe"], u["smith"]]


async def test_multiple_values_match_any(store: SqliteIndexStore, u: dict[str, str]) -> None:
    assert await uids(store, STUDY, ("ModalitiesInStudy", "US,MR")) == [u["doe"], u["smith"]]
    assert await uids(store, STUDY, ("PatientID", "P-3\\P-1")) == [u["doe"], u["smith"]]


async def test_date_range_matching(store: SqliteIndexStore, u: dict[str, str]) -> None:
    assert await uids(store, STUDY, ("StudyDate", "20240101-20240131")) == [u["doe"]]
    assert await uids(store, STUDY, ("StudyDate", "20240102-")) == [u["doe"], u["roe"]]
    assert await uids(store, STUDY, ("StudyDate", "-20240102")) == [u["doe"], u["smith"]]
    assert await uids(store, STUDY, ("StudyDate", "20240215")) == [u["roe"]]


async def test_time_and_datetime_matching(store: SqliteIndexStore, u: dict[str, str]) -> None:
    assert await uids(store, STUDY, ("StudyTime", "10")) == [u["doe"]]
    assert await uids(store, STUDY, ("StudyTime", "0800-1015")) == [u["doe"], u["smith"]]
    assert await uids(store, STUDY, ("StudyTime", "2300-")) == [u["roe"]]
    found = await search(store, INSTANCE, ("AcquisitionDateTime", "202401021015-202401021016"))
    assert [first(r, "0020000D") for r in found] == [u["doe"]]


async def test_fuzzy_person_name_matching(store: SqliteIndexStore, u: dict[str, str]) -> None:
    fuzzy = ("fuzzymatching", "true")
    assert await uids(store, STUDY, ("PatientName", "joh"), fuzzy) == [u["doe"], u["smith"]]
    assert await uids(store, STUDY, ("PatientName", "jo sm"), fuzzy) == [u["smith"]]
    assert await uids(store, STUDY, ("PatientName", "q"), fuzzy) == [u["roe"]]
    assert await uids(store, STUDY, ("PatientName", "ohn"), fuzzy) == []  # prefixes only
    assert await uids(store, STUDY, ("PatientName", "roe\\smi"), fuzzy) == [u["roe"], u["smith"]]


async def test_numbers_and_sequence_items(store: SqliteIndexStore, u: dict[str, str]) -> None:
    found = await search(store, INSTANCE, ("InstanceNumber", "07"))
    assert [first(r, "0020000D") for r in found] == [u["smith"]]
    assert await uids(store, SERIES, ("RequestAttributesSequence.ScheduledProcedureStepID", "SPS-9")) == [u["doe_mr"]]
    assert await uids(store, SERIES, ("00400275.00401001", "RP-*")) == [u["doe_mr"]]


async def test_higher_level_keys_and_paths(store: SqliteIndexStore, u: dict[str, str]) -> None:
    assert await uids(store, SERIES, ("PatientID", "P-1")) == [u["doe_ct"], u["doe_mr"]]
    assert await uids(store, SERIES, ("Modality", "CT"), study_uid=u["doe"]) == [u["doe_ct"]]
    in_doe = await search(store, INSTANCE, ("PatientID", "P-1"), ("Modality", "CT"))
    assert len(in_doe) == 2
    assert len(await search(store, INSTANCE, study_uid=u["doe"])) == 3
    assert len(await search(store, INSTANCE, study_uid=u["doe"], series_uid=u["doe_mr"])) == 1
    assert await search(store, INSTANCE, study_uid=u["roe"], series_uid=u["doe_mr"]) == []
    assert await search(store, SERIES, study_uid="1.2.3") == []


async def test_limit_and_offset_page_stably(store: SqliteIndexStore, u: dict[str, str]) -> None:
    pages = [await uids(store, STUDY, ("limit", "2"), ("offset", str(offset))) for offset in (0, 2, 4)]
    assert pages == [[u["doe"], u["roe"]], [u["smith"]], []]


async def test_results_carry_every_level_and_computed_attribute(store: SqliteIndexStore, u: dict[str, str]) -> None:
    instance = (await search(store, INSTANCE, ("PatientID", "P-3")))[0]
    assert first(instance, "00100010") == {"Alphabetic": "Smith^Johnny"}  # study level
    assert first(instance, "00080060") == "US"  # series level
    assert first(instance, "00280010") == 4 and first(instance, "00080056") == "ONLINE"
    assert first(instance, "00201209") == 1 and first(instance, "00201208") == 1
    assert "7FE00010" not in instance  # bulk data is never indexed or returned
    series = (await search(store, SERIES, ("Modality", "MR")))[0]
    assert first(series, "00400275")["00400009"]["Value"] == ["SPS-9"]
    assert first(series, "00180015") == "HEAD"


# -- plans --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("level", "params", "path"),
    [
        (STUDY, [("PatientID", "P-1")], {}),
        (STUDY, [("PatientName", "DOE*")], {}),
        (STUDY, [("PatientName", "jo"), ("fuzzymatching", "true")], {}),
        (STUDY, [("PatientName", "jo sm\\ro"), ("fuzzymatching", "true")], {}),
        (STUDY, [("ModalitiesInStudy", "CT,MR")], {}),
        (STUDY, [("StudyDate", "20240101-20240131")], {}),
        (SERIES, [("PatientID", "P-1")], {}),
        (INSTANCE, [("PatientID", "P-1")], {}),
        (INSTANCE, [("SOPInstanceUID", "1.2.3")], {}),
        (INSTANCE, [], {"study_uid": "1.2", "series_uid": "1.2.3"}),
        (SERIES, [], {"study_uid": "1.2"}),
    ],
)
def test_indexed_matches_never_scan_a_table(
    tmp_path: Path, level: Level, params: list[tuple[str, str]], path: dict[str, str]
) -> None:
    store = SqliteIndexStore(tmp_path / "index.sqlite")
    run(store.add_instance(make_record()))  # creates the schema
    run(store.close())
    sql, sql_params = compile_search(parse_query(level, params, **path))  # type: ignore[arg-type]
    with sqlite3.connect(tmp_path / "index.sqlite") as connection:
        plan = [row[3] for row in connection.execute(f"EXPLAIN QUERY PLAN {sql}", sql_params)]
    # "SCAN page" / "SCAN (subquery-n)" read an already-matched set; a real table is the fault.
    table_scan = re.compile(r"SCAN (?!page\b|\()")
    assert not [step for step in plan if table_scan.match(step)], plan
