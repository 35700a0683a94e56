"""The Cosmos change feed under concurrent writers in threads and processes, with readers.

Writers in this process (threads sharing one store, each thread with its own event loop)
and in two other processes append to one feed, some entries twice (as a STOW and its
blob event do); readers page by sequence meanwhile. Every reader must end with exactly
the appended set, in sequence order, with no gaps and no duplicates.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import textwrap
import threading
import time
import uuid
from pathlib import Path

from changefeed.port import Action, ChangeEntry
from indexing.cosmos.feed_store import CosmosChangeFeedStore

ROOT = Path(__file__).resolve().parents[2]
PER_WRITER = 25
THREADS = 3
PROCESSES = 2
THREADS_PER_PROCESS = 2


def change(key: str) -> ChangeEntry:
    return ChangeEntry(entry_id=f"{key}:i:create", action=Action.CREATE, study_uid="1", series_uid="1.1",
                       sop_uid=f"1.1.{key}", sop_class_uid="1.2", instance_key=key, incarnation="i")


async def _write(store: CosmosChangeFeedStore, writer: str) -> None:
    for i in range(PER_WRITER):
        await store.append(change(f"{writer}-{i}"))
        if i % 5 == 0:  # a repeated append of an earlier entry (a late blob event)
            await store.append(change(f"{writer}-{i // 2}"))
    await store.close()  # this thread's client


_WRITER_PROCESS = textwrap.dedent("""
    import asyncio, sys, threading
    sys.path[:0] = [{root!r}]
    from indexing.cosmos.feed_store import CosmosChangeFeedStore
    from tests.changefeed.test_cosmos_feed_concurrency import _write
    store = CosmosChangeFeedStore.connect({endpoint!r}, {key!r}, {database!r})
    threads = [threading.Thread(target=lambda n=n: asyncio.run(_write(store, f"{name}-t{{n}}")))
               for n in range({threads})]
    for thread in threads: thread.start()
    for thread in threads: thread.join()
""")


def _read_all(store: CosmosChangeFeedStore, done: threading.Event, seen: list[dict]) -> None:
    async def tail() -> None:
        after = 0
        while True:
            finished = done.is_set()  # one more read after the writers stop
            page = await store.read(after, 7)
            seen.extend({"sequence": entry.sequence, "entry_id": entry.entry_id} for entry in page)
            if page:
                after = page[-1].sequence
            elif finished:
                await store.close()
                return

    asyncio.run(tail())


def test_threads_and_processes_append_gaplessly_while_readers_page(cosmos_server) -> None:
    database = f"feed-{uuid.uuid4().hex[:12]}"
    store = CosmosChangeFeedStore.connect(cosmos_server.endpoint, cosmos_server.key, database)

    async def prepare() -> None:  # create the container before the race starts
        await store.latest()
        await store.close()

    asyncio.run(prepare())
    done = threading.Event()
    readers = [[] for _ in range(2)]
    reader_threads = [threading.Thread(target=_read_all, args=(store, done, seen)) for seen in readers]
    started = time.perf_counter()
    processes = [
        subprocess.Popen([sys.executable, "-c", _WRITER_PROCESS.format(
            root=str(ROOT), endpoint=cosmos_server.endpoint,
            key=cosmos_server.key, database=database, name=f"p{n}", threads=THREADS_PER_PROCESS)],
            env={**os.environ, "PYTHONWARNINGS": "ignore"})
        for n in range(PROCESSES)
    ]
    writers = [threading.Thread(target=lambda n=n: asyncio.run(_write(store, f"main-t{n}"))) for n in range(THREADS)]
    for thread in reader_threads + writers:
        thread.start()
    for thread in writers:
        thread.join()
    assert all(process.wait(timeout=240) == 0 for process in processes)
    elapsed = time.perf_counter() - started
    done.set()
    for thread in reader_threads:
        thread.join()

    writer_names = [f"main-t{n}" for n in range(THREADS)] + [
        f"p{p}-t{n}" for p in range(PROCESSES) for n in range(THREADS_PER_PROCESS)]
    expected = {f"{writer}-{i}:i:create" for writer in writer_names for i in range(PER_WRITER)}
    for seen in readers:
        assert [row["sequence"] for row in seen] == list(range(1, len(expected) + 1))
        assert {row["entry_id"] for row in seen} == expected
    print(json.dumps({"appends": len(expected), "writers": len(writer_names), "seconds": round(elapsed, 2),
                      "appends_per_second": round(len(expected) / elapsed, 1)}))
