"""Background work for the embedded server's lifetime: the in-process bus that delivers
the store's blob-created events, the periodic drop-zone scan, and the local operation runner.

The Azure Functions app runs neither: there Event Grid delivers the events and files
dropped into the container announce themselves.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from dicomweb.api.context import Services
from dicomweb.usecases.dropzone import DropZoneScanner


@contextlib.asynccontextmanager
async def event_indexing(services: Services) -> AsyncIterator[None]:
    bus = services.blob_events
    if bus is not None:
        bus.start(services.blob_created.handle_event)
    interval = services.settings.ingest_scan_seconds
    scanner = (asyncio.get_running_loop().create_task(DropZoneScanner(services.blob_created).run(interval))
               if interval > 0 else None)
    try:
        yield
    finally:
        if scanner is not None:
            scanner.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await scanner
        if bus is not None:
            await bus.stop()


@contextlib.asynccontextmanager
async def operations_running(services: Services) -> AsyncIterator[None]:
    """The local operation runner: unfinished operations resume now, and stop (where they
    are, checkpointed) when the server stops."""
    runner = services.local_runner
    if runner is not None:
        await runner.resume_unfinished()
    try:
        yield
    finally:
        if runner is not None:
            await runner.stop()
