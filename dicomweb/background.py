"""Background work for the embedded server's lifetime: the in-process bus that delivers
the store's blob-created events, the periodic drop-zone scan, the reconciliation run once
in the background at start-up (so start-up time does not grow with the store), and the
local operation runner.

The Azure Functions app runs neither: there Event Grid delivers the events and files
dropped into the container announce themselves.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from dicomcore.threads import in_thread
from dicomweb.api.context import Services
from dicomweb.storage.run_marks import RunMarks
from dicomweb.usecases.dropzone import DropZoneScanner

log = logging.getLogger(__name__)


async def reconcile_at_startup(services: Services, marks: RunMarks) -> None:
    """Repair what a crash left (no digest check: that reads every file; ``dicomweb verify``
    does it), then finish the deletes whose dead deleter's claim had not yet expired.

    Only when an earlier process did not stop cleanly: otherwise there is nothing a crash
    left, and a walk of every file and record would grow with the store (a million
    instances: many minutes of the store's time at every start)."""
    try:
        await services.reconcile.run(repair=True, digests=False)
        await asyncio.sleep(services.settings.delete_lease_seconds)
        await services.delete.finish_unfinished()
        marks.forget_dead()
    except asyncio.CancelledError:
        raise
    except Exception:  # the server keeps serving; verify --repair can be run by hand
        log.exception("start-up reconciliation failed")


@contextlib.asynccontextmanager
async def event_indexing(services: Services) -> AsyncIterator[None]:
    bus = services.blob_events
    if bus is not None:
        bus.start(services.blob_created.handle_event)
    interval = services.settings.ingest_scan_seconds
    scanner = (asyncio.get_running_loop().create_task(DropZoneScanner(services.blob_created).run(interval))
               if interval > 0 else None)
    marks = RunMarks(services.settings.data_dir / "running")
    unclean = await in_thread(marks.start)
    if not unclean:
        log.info("start-up reconciliation not needed: every earlier server process stopped cleanly")
    loop = asyncio.get_running_loop()
    reconciler = (loop.create_task(reconcile_at_startup(services, marks))
                  if services.settings.verify_at_startup and unclean else None)
    try:
        yield
    finally:
        for task in (reconciler, scanner):
            if task is not None:
                task.cancel()
        if reconciler is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await reconciler
        if scanner is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await scanner
        if bus is not None:
            await bus.stop()
        marks.stop()  # last: everything above has stopped


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
