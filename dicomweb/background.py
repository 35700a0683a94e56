"""Event-driven indexing for the embedded server's lifetime: the in-process bus that
delivers the store's blob-created events, and the periodic drop-zone scan.

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
async def fhir_sync(services: Services) -> AsyncIterator[None]:
    """DICOMcast for the server's lifetime, when configured (see dicomweb/usecases/cast);
    ``cast_poll_seconds=0`` leaves it to another runner (the Functions timer)."""
    runner = services.cast if services.settings.cast_poll_seconds > 0 else None
    task = asyncio.get_running_loop().create_task(runner.run()) if runner is not None else None
    try:
        yield
    finally:
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
