"""Extended query tags on the embedded store: reindex throughput and QIDO cost (issue 14).

    python -m bench.xqt_bench [--reindex-instances 20000] [--instances 100000] [--repeats 25]
    python -m bench.xqt_bench --quick          # 2,000 / 5,000 instances, well under a minute

1. Indexes ``--reindex-instances`` synthetic records (:mod:`bench.qido_index`'s records
   plus the values of the tags below, which are not indexed yet) through the public
   ``add_instance``, then adds the extended tags and runs the ``reindex`` operation's
   activities (:class:`~dicomweb.usecases.extended_query_tags.ReindexTags`, the code the
   operation runner calls, page by page) and reports instances/s.
2. Indexes more records up to ``--instances`` (now indexed with the tags at once) and
   times searches on each extended tag next to a built-in tag of the same VR and level
   with the same selectivity: median (p50) through the HTTP app in-process, which also
   reads the tag definitions per request as the server does.

Orthanc has no extended query tags nor a reindex, so there is no Orthanc figure here.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

from bench.qido_index import INSTANCES_PER_SERIES, SERIES_PER_STUDY, element, record
from dicomweb.usecases.extended_query_tags import ExtendedQueryTags, ReindexTags
from dicomweb.usecases.operations.lifecycle import new_operation_id
from indexing.port import InstanceRecord
from indexing.sqlite.extended_tag_store import SqliteExtendedTagStore
from indexing.sqlite.index_store import SqliteIndexStore

TAGS = [
    {"path": "PatientAddress", "level": "study"},  # LO, beside PatientID
    {"path": "EchoNumbers", "level": "instance"},  # IS, beside InstanceNumber
    {"path": "SliceThickness", "level": "instance"},  # DS, compared as numbers, beside InstanceNumber (IS)
    {"path": "ProcedureCodeSequence.CodeValue", "level": "study"},  # SH in a sequence, beside AccessionNumber
]

# (label, built-in query, extended query): the same number of matches on both sides.
PAIRS = [
    ("LO study, one study", "/v1/studies?PatientID=PID{s:07d}", "/v1/studies?PatientAddress=ADDR{s:07d}"),
    ("LO study, instances of it", "/v1/instances?PatientID=PID{s:07d}",
     "/v1/instances?PatientAddress=ADDR{s:07d}"),
    ("SH study (sequence item)", "/v1/studies?AccessionNumber=ACC{s:07d}",
     "/v1/studies?ProcedureCodeSequence.CodeValue=PC{s:07d}"),
    ("IS instance, equality", "/v1/instances?InstanceNumber=5", "/v1/instances?EchoNumbers=5"),
    ("IS instance, range", "/v1/instances?InstanceNumber=3-4", "/v1/instances?EchoNumbers=3-4"),
    ("DS instance, range vs IS range", "/v1/instances?InstanceNumber=3-4", "/v1/instances?SliceThickness=1.5-2.0"),
]


def tagged_record(study: int, series: int, number: int) -> InstanceRecord:
    """:func:`bench.qido_index.record` with the extended tags' values in its header."""
    base = record(study, series, number)
    code_item = {"00080100": element("SH", f"PC{study:07d}")}
    extra = {
        "00101040": element("LO", f"ADDR{study:07d}"),
        "00180086": element("IS", number + 1),
        "00180050": element("DS", 0.5 * (number + 1)),
        "00081032": {"vr": "SQ", "Value": [code_item]},
    }
    return InstanceRecord(**{**vars(base), "attributes": {**base.attributes, **extra}})


async def fill(store: SqliteIndexStore, first_study: int, studies: int) -> float:
    """Index ``studies`` studies from ``first_study`` on; seconds taken."""
    started = time.perf_counter()
    batch: list[InstanceRecord] = []
    for study in range(first_study, first_study + studies):
        for series in range(SERIES_PER_STUDY):
            batch.extend(tagged_record(study, series, number) for number in range(INSTANCES_PER_SERIES))
        if len(batch) >= 64:
            await asyncio.gather(*(store.add_instance(item) for item in batch))
            batch = []
    await asyncio.gather(*(store.add_instance(item) for item in batch))
    return time.perf_counter() - started


async def reindex(registry: ExtendedQueryTags) -> tuple[int, float]:
    """Add :data:`TAGS` and run the reindex activities to the end: (instances, seconds)."""
    operation = ReindexTags(registry)
    tags = await registry.add(TAGS, new_operation_id())
    paths = [tag.path for tag in tags]
    started = time.perf_counter()
    after, done = "", 0
    while True:
        page = await operation.run_activity("page", {"paths": paths, "after": after})
        done += page["count"]
        if page["next"] is None:
            break
        after = page["next"]
    await operation.run_activity("finish", {"paths": paths})
    return done, time.perf_counter() - started


def time_pairs(data_dir: Path, studies: int, repeats: int) -> list[tuple[str, float, float, int]]:
    """(label, built-in p50 ms, extended p50 ms, results) for each pair, through HTTP."""
    from starlette.testclient import TestClient

    from dicomweb.app import create_app
    from dicomweb.settings import Settings

    rows = []
    # verify_at_startup off: the records have no files, and verify would remove them.
    app = create_app(Settings(data_dir=data_dir, verify_at_startup=False))
    with TestClient(app, base_url="http://127.0.0.1") as client:
        for label, built_in, extended in PAIRS:
            timings: dict[str, list[float]] = {built_in: [], extended: []}
            counts: dict[str, int] = {}
            for repeat in range(repeats + 1):
                study = (repeat * 7919) % studies  # a different study each time, the same for both
                for template in (built_in, extended):  # alternated, so load changes hit both alike
                    url = template.format(s=study)
                    started = time.perf_counter()
                    response = client.get(url)
                    elapsed = (time.perf_counter() - started) * 1000
                    assert response.status_code == 200, response.text
                    counts[template] = len(response.json())
                    if repeat:  # the first round warms the caches
                        timings[template].append(elapsed)
            if counts[built_in] != counts[extended]:
                raise AssertionError(f"{label}: {counts[built_in]} vs {counts[extended]} results")
            rows.append((label, statistics.median(timings[built_in]), statistics.median(timings[extended]),
                         counts[extended]))
    return rows


async def run(args: argparse.Namespace) -> None:
    data_dir = Path(tempfile.mkdtemp(prefix="xqt-bench-"))
    try:
        studies = await fill_and_reindex(data_dir, args.reindex_instances, args.instances)
        print_searches(data_dir, studies, args.repeats)
    finally:
        if not args.keep:
            shutil.rmtree(data_dir, ignore_errors=True)


async def fill_and_reindex(data_dir: Path, reindex_instances: int, instances: int) -> int:
    """Fill, reindex (printing its throughput), fill up to ``instances``; the studies stored."""
    per_study = SERIES_PER_STUDY * INSTANCES_PER_SERIES
    database = data_dir / "index.sqlite"
    store, definitions = SqliteIndexStore(database), SqliteExtendedTagStore(database)
    registry = ExtendedQueryTags(definitions, store)
    reindex_studies = max(1, reindex_instances // per_study)
    seconds = await fill(store, 0, reindex_studies)
    print(f"filled {reindex_studies * per_study} instances in {seconds:.1f} s", file=sys.stderr)
    count, seconds = await reindex(registry)
    if count != reindex_studies * per_study or any(tag.status.value != "ready" for tag in await definitions.all()):
        raise AssertionError(f"the reindex saw {count} instances or left tags not ready")
    print(f"reindex: {count} instances, {len(TAGS)} tags, {seconds:.1f} s: {count / seconds:.0f} instances/s")
    studies = max(reindex_studies, instances // per_study)
    seconds = await fill(store, reindex_studies, studies - reindex_studies)
    print(f"filled up to {studies * per_study} instances ({seconds:.1f} s)", file=sys.stderr)
    await store.close()
    await definitions.close()
    return studies


def print_searches(data_dir: Path, studies: int, repeats: int) -> None:
    per_study = SERIES_PER_STUDY * INSTANCES_PER_SERIES
    print(f"QIDO p50 at {studies * per_study} instances (HTTP in-process, {repeats} repeats, load "
          f"{os.getloadavg()[0]:.1f}):")
    print(f"{'search':34} {'results':>7} {'built-in ms':>11} {'extended ms':>11} {'ratio':>6}")
    for label, built_in, extended, results in time_pairs(data_dir, studies, repeats):
        print(f"{label:34} {results:7d} {built_in:11.2f} {extended:11.2f} {extended / built_in:6.2f}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.xqt_bench", description=__doc__.splitlines()[0])
    parser.add_argument("--reindex-instances", type=int, default=20_000, help="instances stored before the reindex")
    parser.add_argument("--instances", type=int, default=100_000, help="instances when the searches are timed")
    parser.add_argument("--repeats", type=int, default=25)
    parser.add_argument("--quick", action="store_true", help="2,000 / 5,000 instances, 10 repeats")
    parser.add_argument("--keep", action="store_true", help="keep the temporary data folder")
    args = parser.parse_args(argv)
    if args.quick:
        args.reindex_instances, args.instances, args.repeats = 2_000, 5_000, 10
    print(f"load average {os.getloadavg()[0]:.1f}", file=sys.stderr)
    asyncio.run(run(args))


if __name__ == "__main__":
    main()
