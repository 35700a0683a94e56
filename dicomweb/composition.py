"""The composition root: settings → adapters → use cases, once per process.

This is the only module that knows which adapter backs each port; routes see only
:class:`~dicomweb.api.context.Services`, use cases only the ports they are given.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, cast

from changefeed.port import ChangeFeedStore, EventSink
from dicomcore import limits, redact
from dicomweb.api.context import Services
from dicomweb.settings import Settings
from dicomweb.storage.call_log import CALL_LOG_ENV, call_logger
from dicomweb.storage.local_events import BlobEventBus
from dicomweb.storage.port import BlobStore, ImportArea
from dicomweb.telemetry.exporters import configure_telemetry
from dicomweb.telemetry.traced import MeasuredEventSink, count_stored, traced
from dicomweb.usecases.blob_created import BlobCreatedHandler
from dicomweb.usecases.cast.archive import LocalArchive
from dicomweb.usecases.cast.ports import FeedSource, FhirClient, StudySource
from dicomweb.usecases.cast.state import BlobState, JsonFileState
from dicomweb.usecases.cast.sync import CastRunner, CastSync
from dicomweb.usecases.delete_instances import DeleteInstances
from dicomweb.usecases.derived_in_index import DerivedInIndexStore
from dicomweb.usecases.derived_store import DerivedStore
from dicomweb.usecases.extended_query_tags import ExtendedIndex, ExtendedQueryTags, ReindexTags
from dicomweb.usecases.import_files import ImportFiles
from dicomweb.usecases.operations.lifecycle import OperationStarter
from dicomweb.usecases.operations.local_runner import LocalRunner
from dicomweb.usecases.operations.steps import OperationKind
from dicomweb.usecases.publish_events import FeedPublisher
from dicomweb.usecases.reconcile import Reconcile
from dicomweb.usecases.sidecars import SidecarFiles
from dicomweb.usecases.store_instance import StoreInstance
from dicomweb.usecases.upload_sessions import UploadSessions
from indexing.extended_tag_store import ExtendedTagStore
from indexing.operation_store import OperationStore
from indexing.port import FrameIndexHolder, IndexStore


def build_services(settings: Settings) -> Services:
    """Adapters for ``settings`` and the use cases over them. Does no I/O."""
    redact.quiet_pydicom()
    limits.configure(limits.ParseLimits(max_header_bytes=settings.max_header_bytes,
                                        max_inflated_bytes=settings.max_inflated_bytes))
    configure_telemetry(settings)
    # A local folder announces its own writes; Blob Storage has Event Grid for that.
    local = settings.blob_store == "filesystem"
    blob_events = BlobEventBus(settings.blob_container, _blob_root(settings)) if local else None
    # Every port is traced here, at the root: one span per call, no tracing code in an adapter.
    blobs = traced(_blob_store(settings, blob_events), "blob")
    index, feed = _index_and_feed(settings)
    index = traced(index, "index", {"add_instance": count_stored, "add_instance_blocking": count_stored})
    feed = traced(feed, "feed")
    events = traced(MeasuredEventSink(_event_sink(settings)), "events")
    publisher = FeedPublisher(feed, events, blobs)
    sidecars = _derived_store(settings, blobs, index)
    store = StoreInstance(blobs, index, sidecars, on_change=publisher.kick,
                          delete_lease_seconds=settings.delete_lease_seconds)
    delete = DeleteInstances(blobs, index, on_change=publisher.kick, lease_seconds=settings.delete_lease_seconds)
    operations = _operation_store(settings)
    import_areas = _ImportAreas(settings)
    # Every operation type (the local runner and the Durable one drive the same kinds).
    extended_tags = _extended_tags(settings, index)
    kind_list: list[OperationKind] = [ImportFiles(import_areas, store, blobs),
                                      ReindexTags(extended_tags, settings.reindex_settle_seconds)]
    kinds: dict[str, OperationKind] = {kind.name: kind for kind in kind_list}
    runner = (LocalRunner(operations, kinds, settings.data_dir / "operations")
              if settings.operations_runner == "local" else None)
    starter = runner or _durable_starter(settings)
    cast = _cast_in_process(settings, LocalArchive(feed, index, sidecars, _service_root(settings)), blobs, events)
    return Services(
        settings=settings,
        blobs=blobs,
        index=index,
        feed=feed,
        events=events,
        publisher=publisher,
        sidecars=sidecars,
        store=store,
        delete=delete,
        blob_created=BlobCreatedHandler(settings.blob_container, blobs, index, store),
        reconcile=Reconcile(blobs, index, store, delete, settings.staging_grace_seconds),
        blob_events=blob_events,
        operations=operations,
        operation_kinds=kinds,
        extended_tags=extended_tags,
        operation_starter=starter,
        import_areas=import_areas,
        uploads=UploadSessions(None if local else blobs, settings.data_dir / "upload-key",  # type: ignore[arg-type]
                               settings.upload_expiry_seconds),
        local_runner=runner,
        closers=[import_areas, *([starter] if runner is None else []),  # type: ignore[list-item]
                 extended_tags.tags],
        cast=cast,
    )


def _derived_store(settings: Settings, blobs: BlobStore, index: IndexStore) -> DerivedStore:
    """Where each instance's metadata and frame index live (docs/architecture.md, "Derived
    data: where it lives"): in the SQLite index, committed with the record, or in sidecar
    files beside the instance file (Cosmos DB, whose documents stay small)."""
    if settings.index_store == "sqlite":
        return DerivedInIndexStore(blobs, cast(FrameIndexHolder, index), settings.bulkdata_threshold)
    return SidecarFiles(blobs, index, settings.bulkdata_threshold)


class _ImportAreas:
    """The import area of each container asked for, made once (the embedded store has one folder)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._areas: dict[str, ImportArea] = {}

    def __call__(self, container: str | None) -> ImportArea:
        settings = self.settings
        if settings.blob_store == "filesystem":
            if container:
                raise ValueError("source.container names a Blob Storage container; the embedded store imports "
                                 "from its import folder only")
            from dicomweb.storage.import_folder import FolderImportArea

            return self._areas.setdefault("", FolderImportArea(settings.import_path))
        from dicomweb.storage.azure_blob import AzureBlobStore, AzureImportArea

        name = container or settings.import_container
        if name not in self._areas:
            store = AzureBlobStore(name, connection_string=settings.blob_connection_string,
                                   account_url=settings.blob_account_url)
            self._areas[name] = AzureImportArea(store, create=name == settings.import_container)
        return self._areas[name]

    async def close(self) -> None:
        for area in self._areas.values():
            await area.close()


def _extended_tags(settings: Settings, index: IndexStore) -> ExtendedQueryTags:
    """The extended query tag registry (docs/extended-query-tags.md). Both index stores read
    the definitions themselves when they index, and have the reindex methods (``index`` is
    the store, wrapped by the tracing proxy)."""
    return ExtendedQueryTags(traced(_extended_tag_store(settings), "extended-tags"), cast(ExtendedIndex, index))


def _extended_tag_store(settings: Settings) -> ExtendedTagStore:
    if settings.index_store == "sqlite":
        from indexing.sqlite.extended_tag_store import SqliteExtendedTagStore

        return SqliteExtendedTagStore(settings.data_dir / "index.sqlite")
    from indexing.cosmos.containers import containers
    from indexing.cosmos.database import CosmosDatabase
    from indexing.cosmos.extended_tag_store import CosmosExtendedTagStore

    return CosmosExtendedTagStore(CosmosDatabase(settings.cosmos_endpoint, settings.cosmos_key,
                                                 settings.cosmos_database, containers()))


def _operation_store(settings: Settings) -> OperationStore:
    if settings.index_store == "sqlite":
        from indexing.sqlite.operation_store import SqliteOperationStore

        settings.data_dir.mkdir(parents=True, exist_ok=True)
        return SqliteOperationStore(settings.data_dir / "index.sqlite")
    from indexing.cosmos.containers import containers
    from indexing.cosmos.database import CosmosDatabase
    from indexing.cosmos.operation_store import CosmosOperationStore

    return CosmosOperationStore(CosmosDatabase(settings.cosmos_endpoint, settings.cosmos_key,
                                               settings.cosmos_database, containers()))


def _durable_starter(settings: Settings) -> OperationStarter:
    from dicomweb.storage.azure_queue import QueueOperationStarter

    return QueueOperationStarter(settings.operations_queue, connection_string=settings.blob_connection_string,
                                 account_url=settings.blob_account_url)


def _fhir_client(fhir_url: str, auth: str) -> FhirClient:
    from dicomweb.fhir.http_client import AzureToken, HttpFhirClient

    if auth not in ("none", "azure"):
        raise ValueError(f"DICOMWEB_FHIR_AUTH={auth!r} is not supported; use 'none' or 'azure'")
    return HttpFhirClient(fhir_url, token=AzureToken(fhir_url) if auth == "azure" else None)


def _cast_sync(fhir: FhirClient, feed: FeedSource, studies: StudySource, state: BlobState | JsonFileState,
               patient_system: str, batch: int = 1000, dose_observations: bool = False) -> CastSync:
    from dicomweb.usecases.cast.study_sync import StudySync  # fhir.resources: imported only when configured

    study_sync = StudySync(fhir, studies, patient_system=patient_system, dose_observations=dose_observations)
    return CastSync(fhir, feed, study_sync, state, batch=batch)


def _cast_in_process(settings: Settings, archive: LocalArchive, blobs: BlobStore, events: EventSink
                     ) -> CastRunner | None:
    """DICOMcast inside this process when DICOMWEB_FHIR_URL is set, woken by each change event."""
    if not settings.fhir_url:
        return None
    fhir = _fhir_client(settings.fhir_url, settings.fhir_auth)
    sync = _cast_sync(fhir, archive, archive, BlobState(blobs), settings.fhir_patient_system,
                      dose_observations=settings.fhir_dose_observations)
    runner = CastRunner(sync, settings.cast_poll_seconds)
    from changefeed.inprocess import InProcessEventBus

    if isinstance(events, InProcessEventBus):
        async def wake(_entry: object) -> None:
            runner.kick()

        events.subscribe(wake)
    return runner


def build_remote_cast(fhir_url: str, service_root: str, state: Path, *, patient_system: str = "",
                      auth: str = "none", batch: int = 1000, dose_observations: bool = False) -> CastSync:
    """DICOMcast following a running server's change feed (``dicomweb cast``)."""
    from dicomweb.fhir.remote_archive import RemoteArchive

    archive = RemoteArchive(service_root)
    return _cast_sync(_fhir_client(fhir_url, auth), archive, archive, JsonFileState(state), patient_system, batch,
                      dose_observations)


def _blob_root(settings: Settings) -> Path:
    return settings.data_dir / "blobs"


def _blob_store(settings: Settings, blob_events: BlobEventBus | None) -> BlobStore:
    if settings.blob_store == "filesystem":
        from dicomweb.storage.filesystem import FilesystemBlobStore

        return FilesystemBlobStore(_blob_root(settings), blob_events.announce if blob_events else None)
    if settings.blob_store == "azure":
        from dicomweb.storage.azure_blob import AzureBlobStore

        return AzureBlobStore(settings.blob_container, connection_string=settings.blob_connection_string,
                              account_url=settings.blob_account_url, client_options=_call_counting("blob"))
    raise ValueError(f"DICOMWEB_BLOB_STORE={settings.blob_store!r} is not supported; use 'filesystem' or 'azure'")


def _index_and_feed(settings: Settings) -> tuple[IndexStore, ChangeFeedStore]:
    if settings.index_store == "sqlite":
        from indexing.sqlite.feed_store import SqliteChangeFeedStore
        from indexing.sqlite.index_store import SqliteIndexStore

        settings.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(settings.data_dir, 0o700)  # patient data: the owner's alone
        database = settings.data_dir / "index.sqlite"
        return SqliteIndexStore(database), SqliteChangeFeedStore(database)
    if settings.index_store == "cosmos":
        from indexing.cosmos.containers import containers
        from indexing.cosmos.database import CosmosDatabase
        from indexing.cosmos.feed_store import CosmosChangeFeedStore
        from indexing.cosmos.index_store import CosmosIndexStore

        cosmos = CosmosDatabase(settings.cosmos_endpoint, settings.cosmos_key, settings.cosmos_database,
                                containers(), client_options=_call_counting("cosmos"))
        feed = CosmosChangeFeedStore(cosmos)
        return CosmosIndexStore(cosmos, feed=feed), feed
    raise ValueError(f"DICOMWEB_INDEX_STORE={settings.index_store!r} is not supported; use 'sqlite' or 'cosmos'")


def _call_counting(service: str) -> dict[str, Any]:
    """SDK client options that log each call when the bench asks for it (bench.azure_compare --costs)."""
    path = os.environ.get(CALL_LOG_ENV)
    return {"raw_response_hook": call_logger(Path(path), service)} if path else {}


def _service_root(settings: Settings) -> str:
    """The service root named outside a request (event sources, the FHIR Endpoint): the public
    URL when set (it should be, wherever clients reach the server by another name), else the
    embedded server's default root."""
    return settings.public_url or "http://127.0.0.1:8080/v1"


def _event_sink(settings: Settings) -> EventSink:
    if settings.eventgrid_endpoint:
        from changefeed.eventgrid import EventGridSink

        return EventGridSink(settings.eventgrid_endpoint, settings.eventgrid_key, _service_root(settings))
    from changefeed.inprocess import InProcessEventBus

    return InProcessEventBus()
