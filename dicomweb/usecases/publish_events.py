"""Publishing the change feed as events, at least once, never in a request's way.

The feed is the source of truth; the publisher keeps a cursor (the last sequence it
delivered, in a small blob) and sends whatever lies beyond it. A STOW only *kicks* the
publisher; if the sink is down the publisher retries with back-off, and a process that
restarts resumes from its cursor, so no event is lost. A crash between sending and saving
the cursor sends a batch twice: subscribers must tolerate duplicates (event ``id`` is the
sequence number, so deduplicating is easy).
"""

from __future__ import annotations

import asyncio
import json
import logging

from changefeed.port import ChangeFeedStore, EventSink
from dicomweb.storage.port import BlobNotFoundError, BlobStore

log = logging.getLogger(__name__)

CURSOR_BLOB = "state/event-cursor.json"
BATCH = 100
MAX_BACKOFF_SECONDS = 30.0


class FeedPublisher:
    def __init__(self, feed: ChangeFeedStore, sink: EventSink, blobs: BlobStore, *,
                 initial_backoff: float = 0.2) -> None:
        self.feed = feed
        self.sink = sink
        self.blobs = blobs
        self.initial_backoff = initial_backoff
        self._task: asyncio.Task[None] | None = None
        self._again = False

    async def cursor(self) -> int:
        try:
            return int(json.loads(await self.blobs.get_bytes(CURSOR_BLOB))["sequence"])
        except BlobNotFoundError:
            return 0  # never published: every change so far is news

    async def _save(self, sequence: int) -> None:
        # Not flushed: a cursor lost to a crash only means a batch is sent again (at least once).
        await self.blobs.put_bytes(CURSOR_BLOB, json.dumps({"sequence": sequence}).encode(), durable=False)

    async def catch_up(self) -> int:
        """Send everything after the cursor; return how many events were sent. Raises on failure."""
        sent = 0
        position = await self.cursor()
        while True:
            entries = await self.feed.read(position, BATCH)
            if not entries:
                return sent
            await self.sink.publish(entries)
            position = entries[-1].sequence
            await self._save(position)
            sent += len(entries)

    def kick(self) -> None:
        """Make sure a catch-up runs soon (coalesced; returns at once)."""
        if not self.sink.active:
            return
        if self._task is not None and not self._task.done():
            self._again = True
            return
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        backoff = self.initial_backoff
        while True:
            self._again = False
            try:
                await self.catch_up()
            except Exception:
                log.warning("publishing change events failed; retrying in %.1f s", backoff, exc_info=True)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF_SECONDS)
                continue
            if not self._again:
                return
            backoff = self.initial_backoff

    async def drain(self) -> None:
        """Wait for the running catch-up (tests and shutdown)."""
        while self._task is not None and not self._task.done():
            await asyncio.shield(self._task)
