"""Change feed figures: read throughput over HTTP and the cost an append adds to a STOW.

    python -m bench.changefeed_bench [--entries 20000]

Starts `dicomweb serve` on a temporary store, fills the feed directly through the store
(the read path does not care how entries got there), then pages through /changefeed with
limit=1000 (with and without metadata) and reports entries/s. The write overhead is the
median time of one ``append`` next to the median latency of a one-instance STOW on the
same machine. Medians of repeated runs.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path

import httpx

from changefeed.port import Action, ChangeEntry
from indexing.sqlite.feed_store import SqliteChangeFeedStore
from tests.support.builders import DICOM, make_dataset, to_bytes
from tests.support.servers import ServerProcess


def _entry(i: int) -> ChangeEntry:
    return ChangeEntry(entry_id=f"bench-{i}", action=Action.CREATE, study_uid="1.2.3", series_uid="1.2.3.4",
                       sop_uid=f"1.2.3.4.{i}", sop_class_uid="1.2.840.10008.5.1.4.1.1.2", instance_key=f"k{i}",
                       incarnation="x")


async def _fill(database: Path, count: int) -> list[float]:
    store = SqliteChangeFeedStore(database)
    timings = []
    for i in range(count):
        started = time.perf_counter()
        await store.append(_entry(i))
        timings.append(time.perf_counter() - started)
    await store.close()
    return timings


def _read_all(root: str, metadata: bool) -> tuple[int, float]:
    after, count = 0, 0
    started = time.perf_counter()
    with httpx.Client(timeout=60) as http:
        while True:
            page = http.get(f"{root}/changefeed", params={
                "offset": after, "limit": 1000, "includeMetadata": str(metadata).lower()}).json()
            if not page:
                return count, time.perf_counter() - started
            count += len(page)
            after = page[-1]["sequence"]


def _read_stored(root: str, count: int, repeats: int = 10) -> float:
    """Entries/s reading the first ``count`` entries (real instances) with their metadata."""
    rates = []
    with httpx.Client(timeout=60) as http:
        for _ in range(repeats):
            started = time.perf_counter()
            page = http.get(f"{root}/changefeed", params={"offset": 0, "limit": count}).json()
            assert len(page) == count and all(entry["metadata"] for entry in page)
            rates.append(count / (time.perf_counter() - started))
    return statistics.median(rates)


def _stow_latencies(root: str, count: int) -> list[float]:
    bodies = [to_bytes(make_dataset(rows=256, columns=256)) for _ in range(count)]
    timings = []
    with httpx.Client(timeout=60) as http:
        for body in bodies:
            started = time.perf_counter()
            assert http.post(f"{root}/studies", content=body, headers={"Content-Type": DICOM}).status_code == 200
            timings.append(time.perf_counter() - started)
    return timings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--entries", type=int, default=20000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        data = Path(folder)
        server = ServerProcess(data)
        try:
            stow = _stow_latencies(server.root, 200)
            appends = asyncio.run(_fill(data / "index.sqlite", args.entries))
            plain = [_read_all(server.root, False) for _ in range(args.repeats)]
            with_metadata = _read_stored(server.root, 200)
        finally:
            server.stop()
    total = plain[0][0]
    print(f"feed entries: {total}")
    print(f"read, includeMetadata=false: {statistics.median(n / s for n, s in plain):,.0f} entries/s "
          f"(median of {args.repeats})")
    print(f"read, includeMetadata=true (pages of the 200 entries of stored instances): "
          f"{with_metadata:,.0f} entries/s")
    append_ms, stow_ms = statistics.median(appends) * 1000, statistics.median(stow) * 1000
    print(f"append p50 {append_ms:.2f} ms; one-instance STOW p50 {stow_ms:.2f} ms; "
          f"the feed entry is {append_ms / stow_ms:.0%} of a STOW")


if __name__ == "__main__":
    main()
