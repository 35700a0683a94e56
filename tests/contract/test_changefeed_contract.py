"""The change-feed store port's contract, run against every adapter (SQLite; Cosmos DB).

Sequence numbers are gapless and increasing, appends are idempotent on ``entry_id``, a
delete marks the instance's earlier entries deleted, and reads by sequence and by time
window agree.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from changefeed.port import Action, ChangeEntry, ChangeFeedStore, State

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(params=["sqlite", "cosmos"])
async def feed(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[ChangeFeedStore]:
    if request.param == "sqlite":
        from indexing.sqlite.feed_store import SqliteChangeFeedStore

        store: ChangeFeedStore = SqliteChangeFeedStore(tmp_path / "feed.sqlite")
    else:
        from indexing.cosmos.feed_store import CosmosChangeFeedStore

        server = request.getfixturevalue("cosmos_server")
        store = CosmosChangeFeedStore.connect(server.endpoint, server.key, f"contract-{uuid.uuid4().hex[:12]}")
    yield store
    await store.close()


def change(key: str, action: Action = Action.CREATE, incarnation: str = "i1") -> ChangeEntry:
    return ChangeEntry(
        entry_id=f"{key}:{incarnation}:{action.value}", action=action, study_uid="1.2", series_uid="1.2.3",
        sop_uid=f"1.2.3.{key}", sop_class_uid="1.2.840.10008.5.1.4.1.1.2", instance_key=key, incarnation=incarnation,
    )


async def test_an_empty_feed(feed: ChangeFeedStore) -> None:
    assert await feed.latest() is None
    assert await feed.read(0, 10) == []
    assert await feed.read_window(None, None, 0, 10) == []


async def test_append_assigns_gapless_increasing_sequences_and_times(feed: ChangeFeedStore) -> None:
    entries = [await feed.append(change(f"k{i}")) for i in range(5)]
    assert [entry.sequence for entry in entries] == [1, 2, 3, 4, 5]
    times = [entry.timestamp for entry in entries]
    assert times == sorted(times) and all(time.endswith("Z") for time in times)
    assert all(entry.state is State.CURRENT for entry in entries)
    assert [entry.to_dict() for entry in await feed.read(0, 10)] == [entry.to_dict() for entry in entries]


async def test_append_is_idempotent_on_entry_id(feed: ChangeFeedStore) -> None:
    first = await feed.append(change("k1"))
    await feed.append(change("k2"))
    again = await feed.append(change("k1"))
    assert again.sequence == first.sequence and again.timestamp == first.timestamp
    assert [entry.sequence for entry in await feed.read(0, 10)] == [1, 2]


async def test_concurrent_appends_are_gapless_and_idempotent(feed: ChangeFeedStore) -> None:
    keys = [f"k{i}" for i in range(20)]
    results = await asyncio.gather(*(feed.append(change(key)) for key in keys + keys[:5]))
    entries = await feed.read(0, 100)
    assert [entry.sequence for entry in entries] == list(range(1, 21))
    assert sorted(entry.instance_key for entry in entries) == sorted(keys)
    by_id = {entry.entry_id: entry.sequence for entry in entries}
    assert all(by_id[result.entry_id] == result.sequence for result in results)


async def test_a_delete_marks_earlier_entries_of_the_instance_deleted(feed: ChangeFeedStore) -> None:
    await feed.append(change("k1"))
    await feed.append(change("k2"))
    deleted = await feed.append(change("k1", Action.DELETE))
    assert deleted.state is State.DELETED and deleted.action is Action.DELETE
    again = await feed.append(change("k1", incarnation="i2"))  # stored again: a new incarnation
    states = {(entry.instance_key, entry.sequence): entry.state for entry in await feed.read(0, 10)}
    assert states == {("k1", 1): State.DELETED, ("k2", 2): State.CURRENT, ("k1", 3): State.DELETED,
                      ("k1", again.sequence): State.CURRENT}
    repeated = await feed.append(change("k1", Action.DELETE))
    assert repeated.sequence == deleted.sequence
    assert (await feed.latest()).sequence == again.sequence  # type: ignore[union-attr]


async def test_read_pages_by_sequence(feed: ChangeFeedStore) -> None:
    for i in range(7):
        await feed.append(change(f"k{i}"))
    assert [entry.sequence for entry in await feed.read(0, 3)] == [1, 2, 3]
    assert [entry.sequence for entry in await feed.read(3, 3)] == [4, 5, 6]
    assert [entry.sequence for entry in await feed.read(6, 3)] == [7]
    assert await feed.read(7, 3) == []
    assert await feed.read(0, 0) == []
    latest = await feed.latest()
    assert latest is not None and latest.sequence == 7 and latest.instance_key == "k6"


async def test_read_window_is_start_inclusive_end_exclusive(feed: ChangeFeedStore) -> None:
    entries = []
    for i in range(6):
        entries.append(await feed.append(change(f"k{i}")))
        await asyncio.sleep(0.002)  # distinct timestamps
    start, end = entries[1].timestamp, entries[4].timestamp

    def expected(first: str | None, last: str | None) -> list[int]:
        return [e.sequence for e in entries if (first is None or e.timestamp >= first)
                and (last is None or e.timestamp < last)]

    async def window(first: str | None, last: str | None, offset: int = 0, limit: int = 100) -> list[int]:
        return [entry.sequence for entry in await feed.read_window(first, last, offset, limit)]

    assert await window(start, end) == expected(start, end) == [2, 3, 4]
    assert await window(start, None) == expected(start, None)
    assert await window(None, end) == expected(None, end)
    assert await window(None, None) == [1, 2, 3, 4, 5, 6]
    assert await window(start, end, offset=1, limit=1) == [3]
    assert await window(start, end, offset=5) == []
    assert await window("2999-01-01T00:00:00.000000Z", None) == []
