"""Search timings of the SQLite index at 100,000 instances (not a pytest test).

    python -m bench.qido_index [--instances 100000] [--database PATH]

Indexes synthetic records through the public ``add_instance`` (10 instances per series,
2 series per study), then reports the median time of each search, store-level and
through the HTTP app in-process. An existing database with data is reused as is.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from indexing.port import InstanceRecord
from indexing.query import Level, parse_query
from indexing.sqlite.index_store import SqliteIndexStore

SERIES_PER_STUDY = 2
INSTANCES_PER_SERIES = 10
SURNAMES = ["SMITH", "JOHNSON", "WILLIAMS", "BROWN", "JONES", "GARCIA", "MILLER", "DAVIS", "ROE", "DOE"]
GIVEN = ["JOHN", "MARY", "JAMES", "PATRICIA", "ROBERT", "JENNIFER", "MICHAEL", "LINDA"]
MODALITIES = ["CT", "MR", "US", "CR", "PT"]


def uid(*parts: int) -> str:
    return "2.25." + ".".join(str(part + 1) for part in parts)


def element(vr: str, *values: Any) -> dict[str, Any]:
    return {"vr": vr, "Value": list(values)}


def record(study: int, series: int, number: int) -> InstanceRecord:
    study_uid, series_uid = uid(study), uid(study, series)
    sop_uid = uid(study, series, number)
    name = f"{SURNAMES[study % len(SURNAMES)]}{study % 997}^{GIVEN[study % len(GIVEN)]}"
    attributes = {
        "00080016": element("UI", "1.2.840.10008.5.1.4.1.1.2"),
        "00080018": element("UI", sop_uid),
        "00080020": element("DA", f"{2020 + study % 5}{1 + study % 12:02d}{1 + study % 28:02d}"),
        "00080030": element("TM", f"{study % 24:02d}{study % 60:02d}00"),
        "00080050": element("SH", f"ACC{study:07d}"),
        "00080060": element("CS", MODALITIES[(study + series) % len(MODALITIES)]),
        "00080090": element("PN", {"Alphabetic": "REFERRER^DR"}),
        "00081030": element("LO", f"Study {study}"),
        "0008103E": element("LO", f"Series {series}"),
        "00100010": element("PN", {"Alphabetic": name}),
        "00100020": element("LO", f"PID{study:07d}"),
        "00100030": element("DA", "19700101"),
        "00100040": element("CS", "O"),
        "0020000D": element("UI", study_uid),
        "0020000E": element("UI", series_uid),
        "00200010": element("SH", str(study)),
        "00200011": element("IS", series + 1),
        "00200013": element("IS", number + 1),
        "00280010": element("US", 512),
        "00280011": element("US", 512),
        "00280100": element("US", 16),
        "7FE00010": {"vr": "OW", "BulkDataURI": "bulk"},
    }
    return InstanceRecord(
        study_uid=study_uid,
        series_uid=series_uid,
        sop_uid=sop_uid,
        sop_class_uid="1.2.840.10008.5.1.4.1.1.2",
        instance_key=f"{study:07d}-{series}-{number}",
        incarnation="1",
        transfer_syntax_uid="1.2.840.10008.1.2.1",
        number_of_frames=1,
        size=524288,
        attributes=attributes,
    )


async def populate(store: SqliteIndexStore, instances: int) -> float:
    per_study = SERIES_PER_STUDY * INSTANCES_PER_SERIES
    records = (
        record(study, series, number)
        for study in range(instances // per_study)
        for series in range(SERIES_PER_STUDY)
        for number in range(INSTANCES_PER_SERIES)
    )
    started = time.perf_counter()
    batch: list[InstanceRecord] = []
    for item in records:
        batch.append(item)
        if len(batch) == 64:
            await asyncio.gather(*(store.add_instance(r) for r in batch))
            batch = []
    await asyncio.gather(*(store.add_instance(r) for r in batch))
    return time.perf_counter() - started


SEARCHES: list[tuple[str, Level, list[tuple[str, str]], dict[str, str]]] = [
    ("/studies?limit=100", Level.STUDY, [("limit", "100")], {}),
    ("/studies?PatientID=PID0004321", Level.STUDY, [("PatientID", "PID0004321")], {}),
    ("/studies?PatientName=SMITH1*", Level.STUDY, [("PatientName", "SMITH1*")], {}),
    ("/studies?PatientName=*TH99^*", Level.STUDY, [("PatientName", "*TH99^*")], {}),
    (
        "/studies?PatientName=mary&fuzzymatching=true",
        Level.STUDY,
        [("PatientName", "mary"), ("fuzzymatching", "true")],
        {},
    ),
    ("/studies?StudyDate=20230301-20230331", Level.STUDY, [("StudyDate", "20230301-20230331")], {}),
    ("/studies?ModalitiesInStudy=MR", Level.STUDY, [("ModalitiesInStudy", "MR")], {}),
    ("/studies?AccessionNumber=ACC0001234", Level.STUDY, [("AccessionNumber", "ACC0001234")], {}),
    ("/series?Modality=CT", Level.SERIES, [("Modality", "CT")], {}),
    ("/series?PatientID=PID0004321", Level.SERIES, [("PatientID", "PID0004321")], {}),
    ("/instances?PatientID=PID0004321", Level.INSTANCE, [("PatientID", "PID0004321")], {}),
    ("/instances?SOPInstanceUID=<one>", Level.INSTANCE, [("SOPInstanceUID", uid(4321, 1, 5))], {}),
    (
        "/studies/<s>/series/<se>/instances",
        Level.INSTANCE,
        [],
        {"study_uid": uid(4321), "series_uid": uid(4321, 1)},
    ),
    ("/instances?limit=100&offset=50000", Level.INSTANCE, [("limit", "100"), ("offset", "50000")], {}),
    ("/instances?Modality=MR&limit=100", Level.INSTANCE, [("Modality", "MR")], {}),
]


async def time_searches(store: SqliteIndexStore, repeats: int) -> None:
    print(f"{'search':58} {'results':>7} {'median ms':>10} {'max ms':>8}")
    for label, level, params, path in SEARCHES:
        query = parse_query(level, params, **path)  # type: ignore[arg-type]
        await store.search(query)  # warm the page cache
        timings, found = [], []
        for _ in range(repeats):
            started = time.perf_counter()
            found = await store.search(query)
            timings.append((time.perf_counter() - started) * 1000)
        print(f"{label:58} {len(found):7d} {statistics.median(timings):10.2f} {max(timings):8.2f}")


def time_http(database_dir: Path, repeats: int) -> None:
    from starlette.testclient import TestClient

    from dicomweb.app import create_app
    from dicomweb.settings import Settings

    with TestClient(create_app(Settings(data_dir=database_dir)), base_url="http://127.0.0.1") as client:
        for url in [
            "/v1/studies?limit=100",
            "/v1/studies?PatientID=PID0004321",
            "/v1/instances?PatientID=PID0004321",
        ]:
            client.get(url)
            timings = []
            for _ in range(repeats):
                started = time.perf_counter()
                response = client.get(url)
                timings.append((time.perf_counter() - started) * 1000)
            assert response.status_code == 200
            print(f"HTTP GET {url:49} {len(response.json()):7d} {statistics.median(timings):10.2f}")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--instances", type=int, default=100_000)
    parser.add_argument("--database", type=Path, help="index file (default: a new temporary one)")
    parser.add_argument("--repeats", type=int, default=25)
    args = parser.parse_args()
    database = args.database or Path(tempfile.mkdtemp(prefix="qido-bench-")) / "index.sqlite"
    store = SqliteIndexStore(database)
    if not (await store.search(parse_query(Level.INSTANCE, [("limit", "1")]))):
        seconds = await populate(store, args.instances)
        print(f"indexed {args.instances} instances in {seconds:.1f} s ({args.instances / seconds:.0f}/s)")
    print(f"database {database} ({database.stat().st_size / 1e6:.0f} MB)", file=sys.stderr)
    await time_searches(store, args.repeats)
    await store.close()
    if database.name == "index.sqlite":
        time_http(database.parent, args.repeats)


if __name__ == "__main__":
    asyncio.run(main())
