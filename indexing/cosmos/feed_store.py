"""The change feed in Cosmos DB, gapless and in commit order, without the Cosmos change feed
or transactional batch (neither exists on the Cosmos test server, and neither orders
across writers anyway).

Design (a) of DESIGN.md, "the entry document is the claim": an entry is a document whose
``id`` is its sequence number. A writer reads the highest entry k (or remembers it from
its last append) and creates ``id = k+1``; creating an existing ``id`` fails with 409,
and the writer re-reads the head and tries the next number. So:

- *Gapless:* k+1 is only ever attempted after k was seen to exist, and entries are never
  deleted, so no number is skipped.
- *Commit order:* k+1 cannot be created before k is committed, so sequence order is
  commit order, and a reader paging by sequence can never pass an entry that will
  appear behind it (the bug of a counter bumped before the entry is written).
- *One logical partition:* every entry has the same partition key. Cosmos replicates a
  partition's writes in order and every consistency level above eventual gives readers
  a consistent prefix, so a reader that sees k+1 sees k too, whichever replica answers.
  The cost is the logical-partition limit (20 GB: some 30 million entries of ~0.6 KB)
  and about 10,000 RU/s for the feed; past that the feed needs epochs (a partition per
  range of sequences), which also needs a global entry-id index.
- *Idempotent and crash-safe:* the container has a unique key on ``/entry_id``, which
  Cosmos enforces within a logical partition, i.e. across the whole feed. Claiming the
  sequence and asserting the entry id are therefore one atomic create: there is no
  window between two writes for a crash to leave half done. A 409 is then either "the
  number is taken" or "this entry exists"; a query by entry id tells which.
- *Time order:* an entry's timestamp is ``max(now, timestamp of k)``, so timestamps
  never decrease along the sequence (clocks of different writers may differ), and a
  time window is a contiguous run of sequence numbers: offsets into it are arithmetic.

A delete entry marks the instance's earlier current entries deleted, after it is
created (patches, one per entry). A crash in between leaves them current until the same
delete is appended again (the indexer's repair does): an existing delete entry found by
its id re-applies the marks.

Appends of one process wait in line (a per-loop lock) instead of racing each other, so
contention is between processes only. Measured against the Cosmos test server on this
2-core machine, under other load (200 appends, writers each with their own store, as
separate processes would be): one writer ~80-100 appends/s (one create, ~10 ms); two
competing writers ~100/s together; eight ~35/s, as each lost race costs two queries.
``tests/changefeed/test_cosmos_feed_concurrency.py`` checks the guarantees with threads
and processes.
Design (b), a sequencer assigning numbers to pending entries in batches, would scale
further but needs a leader lease and fencing, and a sequencer that dies holding the
lease stalls the feed; (a) is exact with one atomic write, and enough while the feed
is written once per stored instance.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from dataclasses import dataclass
from typing import Any

from azure.cosmos.exceptions import CosmosResourceExistsError, CosmosResourceNotFoundError

from changefeed.port import Action, ChangeEntry, State
from dicomcore.clock import utc_now
from indexing.cosmos.database import ContainerSpec, CosmosDatabase
from indexing.records import entry_state, next_timestamp

FEED = "changefeed"
"""The one partition key value of every entry (see the module docstring)."""

CONTAINER = ContainerSpec(
    name="changefeed",
    partition_key="/feed",
    unique_keys=("/entry_id",),
    indexing_policy={
        "indexingMode": "consistent",
        "automatic": True,
        "includedPaths": [
            {"path": "/feed/?"},
            {"path": "/sequence/?"},
            {"path": "/timestamp/?"},
            {"path": "/entry_id/?"},
            {"path": "/instance_key/?"},
            {"path": "/state/?"},
        ],
        "excludedPaths": [{"path": "/*"}],
    },
)

_FIELDS = ("entry_id", "action", "study_uid", "series_uid", "sop_uid", "sop_class_uid", "instance_key",
           "incarnation", "sequence", "timestamp", "state")


@dataclass(frozen=True)
class _Head:
    sequence: int
    timestamp: str


def _entry(doc: dict[str, Any]) -> ChangeEntry:
    values = {name: doc[name] for name in _FIELDS}
    values["action"] = Action(values["action"])
    values["state"] = State(values["state"])
    return ChangeEntry(**values)


class CosmosChangeFeedStore:
    """The feed in container ``changefeed`` of the given database."""

    def __init__(self, database: CosmosDatabase) -> None:
        self._database = database
        self._head: _Head | None = None
        """The highest entry this process has seen: the next append tries the number after it."""
        self._lock: dict[asyncio.AbstractEventLoop, asyncio.Lock] = {}

    @classmethod
    def connect(cls, endpoint: str, key: str, database: str) -> CosmosChangeFeedStore:
        return cls(CosmosDatabase(endpoint, key, database, [CONTAINER]))

    async def _container(self) -> Any:
        return await self._database.container(CONTAINER.name)

    # -- writes -------------------------------------------------------------------------

    async def append(self, entry: ChangeEntry) -> ChangeEntry:
        # Appends of this process queue here rather than racing each other for the head:
        # a lost race costs a query and a retry, a wait in line costs nothing.
        async with self._lock.setdefault(asyncio.get_running_loop(), asyncio.Lock()):
            return await self._append(entry)

    async def _append(self, entry: ChangeEntry) -> ChangeEntry:
        container = await self._container()
        state = entry_state(entry.action)
        head = self._head
        conflicts = 0
        while True:
            if head is None:
                head = await self._read_head(container)
            sequence = head.sequence + 1
            timestamp = next_timestamp(utc_now(), head.timestamp)
            document = {**entry.to_dict(), "id": str(sequence), "feed": FEED, "sequence": sequence,
                        "timestamp": timestamp, "state": state.value}
            try:
                await container.create_item(document)
            except CosmosResourceExistsError:
                # Either the number is taken (another writer got there first) or this
                # entry exists: ask both at once.
                existing, head = await asyncio.gather(
                    self._find(container, entry.entry_id), self._read_head(container))
                if existing is not None:
                    if existing.action is Action.DELETE:
                        await self._mark_deleted(container, existing)
                    return existing
                conflicts += 1
                if conflicts > 2:
                    # Many writers at the head: spread them out rather than all retrying at once.
                    await asyncio.sleep(random.uniform(0, 0.002 * min(conflicts, 20)))
                continue
            self._head = _Head(sequence, timestamp)
            entry.sequence, entry.timestamp, entry.state = sequence, timestamp, state
            if entry.action is Action.DELETE:
                await self._mark_deleted(container, entry)
            return entry

    async def contains(self, entry_id: str) -> bool:
        """The entry with this id is in the feed."""
        return await self._find(await self._container(), entry_id) is not None

    async def existing(self, entry_ids: list[str]) -> set[str]:
        """Which of these entry ids are in the feed (one query; reconciliation pages by 100)."""
        if not entry_ids:
            return set()
        rows = await self._query(
            await self._container(),
            "SELECT VALUE c.entry_id FROM c WHERE c.feed = @feed AND ARRAY_CONTAINS(@ids, c.entry_id)",
            {"@ids": entry_ids})
        return {str(row) for row in rows}

    async def _read_head(self, container: Any) -> _Head:
        rows = await self._query(
            container, "SELECT TOP 1 c.sequence, c.timestamp FROM c WHERE c.feed = @feed ORDER BY c.sequence DESC", {})
        if not rows:
            return _Head(0, "")
        return _Head(rows[0]["sequence"], rows[0]["timestamp"])

    async def _find(self, container: Any, entry_id: str) -> ChangeEntry | None:
        rows = await self._query(
            container, "SELECT * FROM c WHERE c.feed = @feed AND c.entry_id = @id", {"@id": entry_id})
        return _entry(rows[0]) if rows else None

    async def _mark_deleted(self, container: Any, delete: ChangeEntry) -> None:
        rows = await self._query(
            container,
            "SELECT c.id FROM c WHERE c.feed = @feed AND c.instance_key = @key AND c.state = @current"
            " AND c.sequence < @sequence",
            {"@key": delete.instance_key, "@current": State.CURRENT.value, "@sequence": delete.sequence},
        )
        for row in rows:
            # Entries are never removed by the server; tolerate an operator's cleanup.
            with contextlib.suppress(CosmosResourceNotFoundError):
                await container.patch_item(
                    row["id"], partition_key=FEED,
                    patch_operations=[{"op": "set", "path": "/state", "value": State.DELETED.value}],
                )

    # -- reads --------------------------------------------------------------------------

    @staticmethod
    async def _query(container: Any, query: str, parameters: dict[str, Any]) -> list[dict[str, Any]]:
        # The partition key is in the WHERE clause too: the test server ignores the
        # partition-key header and refuses a single-partition query without it.
        parameters = {**parameters, "@feed": FEED}
        items = container.query_items(
            query, parameters=[{"name": name, "value": value} for name, value in parameters.items()],
            partition_key=FEED,
        )
        return [item async for item in items]

    async def read(self, after: int, limit: int) -> list[ChangeEntry]:
        if limit <= 0:
            return []
        rows = await self._query(
            await self._container(),
            "SELECT TOP @limit * FROM c WHERE c.feed = @feed AND c.sequence > @after ORDER BY c.sequence",
            {"@limit": limit, "@after": after},
        )
        return [_entry(row) for row in rows]

    async def read_window(self, start: str | None, end: str | None, offset: int, limit: int) -> list[ChangeEntry]:
        if limit <= 0:
            return []
        container = await self._container()
        first = 1
        if start:
            rows = await self._query(
                container, "SELECT TOP 1 VALUE c.sequence FROM c WHERE c.feed = @feed AND c.timestamp >= @start"
                " ORDER BY c.sequence",
                {"@start": start})
            if not rows:
                return []
            first = int(rows[0])  # type: ignore[call-overload]  # a VALUE query: the rows are numbers
        # Timestamps never decrease along the sequence, so the window is the run of
        # sequence numbers from ``first`` whose timestamps are before ``end``.
        rows = await self._query(
            container,
            "SELECT TOP @limit * FROM c WHERE c.feed = @feed AND c.sequence >= @from AND c.timestamp < @end"
            " ORDER BY c.sequence",
            {"@limit": limit, "@from": first + max(offset, 0), "@end": end or "9999"},
        )
        return [_entry(row) for row in rows]

    async def latest(self) -> ChangeEntry | None:
        rows = await self._query(
            await self._container(), "SELECT TOP 1 * FROM c WHERE c.feed = @feed ORDER BY c.sequence DESC", {})
        return _entry(rows[0]) if rows else None

    async def close(self) -> None:
        await self._database.close()
