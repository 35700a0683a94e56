"""Finding files in the drop zone (``incoming/``) that no write event announced.

A user copying files into ``DATA/blobs/incoming/`` writes past the store, so nothing
announces them (in Azure, Event Grid does). The scanner lists the drop zone and hands a
BlobCreated event for each file to the handler Event Grid calls in Azure
(:class:`dicomweb.usecases.blob_created.BlobCreatedHandler`). The server scans every few seconds
(``DICOMWEB_INGEST_SCAN_SECONDS``); ``dicomweb ingest`` scans once.

A file is taken once it has stopped changing for one scan interval (its size and, on a
local folder, its inode, modification and change times: a preallocated file being filled
keeps its size), so one still being copied in is not taken half-written; the move then
copies it and checks it did not change meanwhile (:meth:`BlobStore.move`). Names with a
part starting with ``.`` (the temporary files of rsync and most copy tools) are left alone.
A file whose handling keeps failing with an unexpected error is retried at each scan, and
after :data:`MAX_ATTEMPTS` moved to ``failed/`` with that error: never lost, never retried forever.
"""

from __future__ import annotations

import asyncio
import logging

from dicomcore import layout
from dicomcore.redact import error_summary
from dicomweb.storage.blob_events import blob_created_event
from dicomweb.storage.port import BlobNotFoundError
from dicomweb.usecases.blob_created import BlobCreatedHandler, Outcome
from dicomweb.usecases.failures import quarantine

MAX_ATTEMPTS = 5

log = logging.getLogger(__name__)


def _hidden(name: str) -> bool:
    return any(part.startswith(".") for part in name.split("/"))


class DropZoneScanner:
    """Delivers the drop zone's files to the handler; keeps what it saw between scans."""

    def __init__(self, handler: BlobCreatedHandler, *, wait_for_stable_size: bool = True) -> None:
        self.handler = handler
        self.wait_for_stable_size = wait_for_stable_size
        self._states: dict[str, tuple[int, str | None]] = {}
        self._attempts: dict[str, int] = {}

    async def scan(self) -> dict[str, Outcome]:
        """One pass over the drop zone: what was done with each file taken."""
        blobs = self.handler.blobs
        names = [name async for name in blobs.list_names(layout.INCOMING_PREFIX) if not _hidden(name)]
        states: dict[str, tuple[int, str | None]] = {}
        outcomes: dict[str, Outcome] = {}
        for name in names:
            try:
                states[name] = (await blobs.size(name), blobs.version_now(name))
            except BlobNotFoundError:
                continue  # handled meanwhile by an event
            if self.wait_for_stable_size and self._states.get(name) != states[name]:
                continue  # new or still changing: look again next scan
            outcome = await self._deliver(name, states[name][0])
            if outcome is not None:
                outcomes[name] = outcome
        self._states = states
        self._attempts = {name: count for name, count in self._attempts.items() if name in states}
        return outcomes

    async def _deliver(self, name: str, size: int) -> Outcome | None:
        event = blob_created_event(self.handler.container, name, size, url="")
        try:
            outcome = await self.handler.handle_event(event)
        except Exception as exc:
            attempts = self._attempts[name] = self._attempts.get(name, 0) + 1
            if attempts < MAX_ATTEMPTS:
                # No traceback: an exception's text may quote what the file holds.
                log.warning("importing %a failed (attempt %d of %d: %s); retrying at the next scan",
                            name, attempts, MAX_ATTEMPTS, error_summary(exc))
                return None
            await quarantine(self.handler.blobs, name, f"import failed {attempts} times; last error: {exc!r}")
            outcome = Outcome.FAILED
        self._attempts.pop(name, None)
        return outcome

    async def run(self, interval: float) -> None:
        """Scan every ``interval`` seconds until cancelled."""
        while True:
            try:
                await self.scan()
            except Exception as exc:  # storage unreachable: try again next time
                log.warning("scanning the drop zone failed (%s)", error_summary(exc))
            await asyncio.sleep(interval)


async def scan_once(handler: BlobCreatedHandler) -> dict[str, Outcome]:
    """Import everything in the drop zone now (the files are taken as complete)."""
    return await DropZoneScanner(handler, wait_for_stable_size=False).scan()
