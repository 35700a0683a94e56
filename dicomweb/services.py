"""Building the adapters the settings name, once per process.

This is the only place that knows which adapter backs each port; the HTTP layer sees
only :class:`Services`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from starlette.requests import Request

from changefeed.port import ChangeFeedStore, EventSink
from changefeed.publisher import FeedPublisher
from dicomweb.settings import Settings
from dicomweb.storage.port import BlobStore
from indexing.event_bus import BlobEventBus
from indexing.port import IndexStore


@dataclass
class Services:
    settings: Settings
    blobs: BlobStore
    index: IndexStore
    feed: ChangeFeedStore
    events: EventSink
    publisher: FeedPublisher
    blob_events: BlobEventBus | None = None
    """The local store's blob-created events (``None`` where Event Grid delivers them)."""

    async def close(self) -> None:
        await self.publisher.drain()
        await self.events.close()
        await self.index.close()
        await self.feed.close()
        await self.blobs.close()


def build_services(settings: Settings) -> Services:
    # A local folder announces its own writes; Blob Storage has Event Grid for that.
    local = settings.blob_store == "filesystem"
    blob_events = BlobEventBus(settings.blob_container, _blob_root(settings)) if local else None
    blobs = _blob_store(settings, blob_events)
    index, feed = _index_and_feed(settings)
    events = _event_sink(settings)
    return Services(
        settings=settings,
        blobs=blobs,
        index=index,
        feed=feed,
        events=events,
        publisher=FeedPublisher(feed, events, blobs),
        blob_events=blob_events,
    )


def _blob_root(settings: Settings) -> Path:
    return settings.data_dir / "blobs"


def _blob_store(settings: Settings, blob_events: BlobEventBus | None) -> BlobStore:
    if settings.blob_store == "filesystem":
        from dicomweb.storage.filesystem import FilesystemBlobStore

        return FilesystemBlobStore(_blob_root(settings), blob_events.announce if blob_events else None)
    if settings.blob_store == "azure":
        from dicomweb.storage.azure_blob import AzureBlobStore

        return AzureBlobStore(settings.blob_container, connection_string=settings.blob_connection_string,
                              account_url=settings.blob_account_url)
    raise ValueError(f"DICOMWEB_BLOB_STORE={settings.blob_store!r} is not supported; use 'filesystem' or 'azure'")


def _index_and_feed(settings: Settings) -> tuple[IndexStore, ChangeFeedStore]:
    if settings.index_store == "sqlite":
        from changefeed.sqlite_store import SqliteChangeFeedStore
        from indexing.sqlite_store import SqliteIndexStore

        settings.data_dir.mkdir(parents=True, exist_ok=True)
        database = settings.data_dir / "index.sqlite"
        return SqliteIndexStore(database), SqliteChangeFeedStore(database)
    if settings.index_store == "cosmos":
        from changefeed.cosmos_store import CosmosChangeFeedStore
        from dicomweb.cosmos import CosmosDatabase
        from indexing.cosmos_schema import containers
        from indexing.cosmos_store import CosmosIndexStore

        database = CosmosDatabase(settings.cosmos_endpoint, settings.cosmos_key, settings.cosmos_database,
                                  containers())
        return CosmosIndexStore(database), CosmosChangeFeedStore(database)
    raise ValueError(f"DICOMWEB_INDEX_STORE={settings.index_store!r} is not supported; use 'sqlite' or 'cosmos'")


def _event_sink(settings: Settings) -> EventSink:
    if settings.eventgrid_endpoint:
        from changefeed.eventgrid import EventGridSink

        return EventGridSink(settings.eventgrid_endpoint, settings.eventgrid_key, settings.public_url)
    from changefeed.events import InProcessEventBus

    return InProcessEventBus()


def services_of(request: Request) -> Services:
    """The adapters behind the app serving ``request`` (set in ``create_app``)."""
    return request.app.state.services
