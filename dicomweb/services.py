"""Building the adapters the settings name, once per process.

This is the only place that knows which adapter backs each port; the HTTP layer sees
only :class:`Services`.
"""

from __future__ import annotations

from dataclasses import dataclass

from starlette.requests import Request

from changefeed.port import ChangeFeedStore, EventSink
from changefeed.publisher import FeedPublisher
from dicomweb.settings import Settings
from dicomweb.storage.port import BlobStore
from indexing.port import IndexStore


@dataclass
class Services:
    settings: Settings
    blobs: BlobStore
    index: IndexStore
    feed: ChangeFeedStore
    events: EventSink
    publisher: FeedPublisher

    async def close(self) -> None:
        await self.publisher.drain()
        await self.events.close()
        await self.index.close()
        await self.feed.close()


def build_services(settings: Settings) -> Services:
    if settings.blob_store != "filesystem":
        raise ValueError(f"DICOMWEB_BLOB_STORE={settings.blob_store!r} is not supported; use 'filesystem'")
    if settings.index_store != "sqlite":
        raise ValueError(f"DICOMWEB_INDEX_STORE={settings.index_store!r} is not supported; use 'sqlite'")
    from changefeed.sqlite_store import SqliteChangeFeedStore
    from dicomweb.storage.filesystem import FilesystemBlobStore
    from indexing.sqlite_store import SqliteIndexStore

    settings.data_dir.mkdir(parents=True, exist_ok=True)
    database = settings.data_dir / "index.sqlite"
    blobs = FilesystemBlobStore(settings.data_dir / "blobs")
    feed = SqliteChangeFeedStore(database)
    events = _event_sink(settings)
    return Services(
        settings=settings,
        blobs=blobs,
        index=SqliteIndexStore(database),
        feed=feed,
        events=events,
        publisher=FeedPublisher(feed, events, blobs),
    )


def _event_sink(settings: Settings) -> EventSink:
    if settings.eventgrid_endpoint:
        from changefeed.eventgrid import EventGridSink

        return EventGridSink(settings.eventgrid_endpoint, settings.eventgrid_key, settings.public_url)
    from changefeed.events import InProcessEventBus

    return InProcessEventBus()


def services_of(request: Request) -> Services:
    """The adapters behind the app serving ``request`` (set in ``create_app``)."""
    return request.app.state.services
