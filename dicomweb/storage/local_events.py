"""The embedded stand-in for Event Grid: blob-created events delivered in-process.

The filesystem store announces each blob it writes (its ``on_blob_created`` hook); for a file
in the drop zone (the only kind this bus delivers, see :func:`_handled`) the bus
turns that into the payload Blob Storage would send through Event Grid and hands it to the
handler (:class:`dicomweb.usecases.blob_created.BlobCreatedHandler`) on a background task, one event at a time,
so a STOW never waits for its own event. Like Event Grid, delivery is asynchronous and
failures do not reach the writer. Events live in memory only: what a crash loses, the
drop-zone scan (dropped files) and a re-sent instance (a stored file) recover.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from pathlib import Path
from typing import Any

from dicomcore import layout
from dicomcore.redact import error_summary
from dicomweb.storage.blob_events import EventHandler, blob_created_event

log = logging.getLogger(__name__)


def _handled(name: str) -> bool:
    """Only files dropped into ``incoming/`` are announced on this bus.

    Sidecars have no handler. Instance files do (``BlobCreatedHandler`` indexes one it finds
    unindexed), but in this process every instance file is written by the store use case,
    which indexes it itself before it answers: its event only looked the instance up, waited
    ``SETTLE_SECONDS`` and looked again, three index reads per STOW for nothing
    (docs/performance.md). What that event could repair, a crash between placing a file and
    indexing it, it never did here anyway: the event lives in memory and dies with the
    process; the start-up reconciliation indexes such a file (docs/architecture.md,
    "Recovery"). In Azure, Event Grid still delivers every instance file's event."""
    return name.startswith(layout.INCOMING_PREFIX)


class BlobEventBus:
    """Delivers the blob-created events of a filesystem store rooted at ``root``."""

    def __init__(self, container: str, root: Path) -> None:
        self._container = container
        self._root = root
        self._queue: asyncio.Queue[dict[str, Any]] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[None] | None = None

    def announce(self, name: str, size: int) -> None:
        """The store's hook: queue the event for ``name`` (dropped while nobody listens,
        e.g. in a one-off CLI command)."""
        if self._queue is None or self._loop is None or not _handled(name):
            return
        payload = blob_created_event(self._container, name, size, (self._root / name).as_uri())
        try:
            same_loop = asyncio.get_running_loop() is self._loop
        except RuntimeError:
            same_loop = False
        if same_loop:
            self._queue.put_nowait(payload)
        else:  # a write made from another thread or loop
            self._loop.call_soon_threadsafe(self._queue.put_nowait, payload)

    def start(self, handler: EventHandler) -> None:
        """Deliver events to ``handler`` from now on (on the running loop)."""
        self._loop = asyncio.get_running_loop()
        self._queue = asyncio.Queue()
        self._task = self._loop.create_task(self._deliver(self._queue, handler))

    async def drain(self) -> None:
        """Wait until every event queued so far is handled (tests, shutdown)."""
        if self._queue is not None:
            await self._queue.join()

    async def stop(self) -> None:
        """Stop delivering; events still queued are dropped (see the module docstring)."""
        task, self._task, self._queue, self._loop = self._task, None, None, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    @staticmethod
    async def _deliver(queue: asyncio.Queue[dict[str, Any]], handler: EventHandler) -> None:
        while True:
            payload = await queue.get()
            try:
                await handler(payload)
            except Exception as exc:  # summarised: a message or traceback may quote patient data
                log.error("handling blob-created event for %a failed (%s)", payload.get("subject"), error_summary(exc))
            finally:
                queue.task_done()
