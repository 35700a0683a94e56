"""What a route reaches through its request: the ports and the use cases, wired once.

The composition root (:mod:`dicomweb.composition`) builds one :class:`Services` per process
and the app keeps it in ``app.state``. Routes take what they need from it; use cases never
see it (each takes its ports as arguments).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from starlette.requests import Request

from changefeed.port import ChangeFeedStore, EventSink
from dicomweb.settings import Settings
from dicomweb.storage.blob_events import BlobEventSource
from dicomweb.storage.port import BlobStore
from dicomweb.usecases.blob_created import BlobCreatedHandler
from dicomweb.usecases.cast.sync import CastRunner
from dicomweb.usecases.delete_instances import DeleteInstances
from dicomweb.usecases.derived_store import DerivedStore
from dicomweb.usecases.extended_query_tags import ExtendedQueryTags
from dicomweb.usecases.import_files import ImportAreas
from dicomweb.usecases.operations.lifecycle import OperationStarter
from dicomweb.usecases.operations.local_runner import LocalRunner
from dicomweb.usecases.operations.steps import OperationKind
from dicomweb.usecases.publish_events import FeedPublisher
from dicomweb.usecases.reconcile import Reconcile
from dicomweb.usecases.store_instance import StoreInstance
from dicomweb.usecases.upload_sessions import UploadSessions
from indexing.operation_store import OperationStore
from indexing.port import IndexStore


class Closeable(Protocol):
    async def close(self) -> None: ...


@dataclass
class Services:
    settings: Settings
    blobs: BlobStore
    index: IndexStore
    feed: ChangeFeedStore
    events: EventSink
    publisher: FeedPublisher
    sidecars: DerivedStore
    """Where each instance's metadata and frame index are read: sidecar files or the index."""
    store: StoreInstance
    delete: DeleteInstances
    blob_created: BlobCreatedHandler
    reconcile: Reconcile
    operations: OperationStore
    operation_kinds: dict[str, OperationKind]
    """Every operation type, by name (what both runners drive)."""
    operation_starter: OperationStarter
    import_areas: ImportAreas
    uploads: UploadSessions
    blob_events: BlobEventSource | None = None
    """The local store's blob-created events (``None`` where Event Grid delivers them)."""
    local_runner: LocalRunner | None = None
    """The in-process operation runner (``None`` where Durable Functions runs operations)."""
    closers: list[Closeable] = field(default_factory=list)
    """Further adapters to close (import areas, the operations queue)."""
    cast: CastRunner | None = None
    """DICOMcast, when ``DICOMWEB_FHIR_URL`` is set."""
    extended_tags: ExtendedQueryTags | None = None
    """The extended query tag registry (both stores; ``None`` only in services built without it)."""

    async def close(self) -> None:
        if self.local_runner is not None:
            await self.local_runner.stop()
        for closer in self.closers:
            await closer.close()
        await self.operations.close()
        await self.publisher.drain()
        await self.events.close()
        await self.index.close()
        await self.feed.close()
        await self.blobs.close()
        if self.cast is not None:
            await self.cast.sync.close()


def services_of(request: Request) -> Services:
    """The ports and use cases behind the app serving ``request`` (set in ``create_app``)."""
    services: Services = request.app.state.services
    return services
