"""Building the adapters the settings name, once per process.

This is the only place that knows which adapter backs each port; the HTTP layer sees
only :class:`Services`.
"""

from __future__ import annotations

from dataclasses import dataclass

from starlette.requests import Request

from changefeed.port import ChangeFeedStore, EventSink
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

    async def close(self) -> None:
        await self.index.close()
        await self.feed.close()


def build_services(settings: Settings) -> Services:
    if settings.blob_store != "filesystem":
        raise ValueError(f"DICOMWEB_BLOB_STORE={settings.blob_store!r} is not supported; use 'filesystem'")
    if settings.index_store != "sqlite":
        raise ValueError(f"DICOMWEB_INDEX_STORE={settings.index_store!r} is not supported; use 'sqlite'")
    from changefeed.events import InProcessEventBus
    from changefeed.sqlite_store import SqliteChangeFeedStore
    from dicomweb.storage.filesystem import FilesystemBlobStore
    from indexing.sqlite_store import SqliteIndexStore

    settings.data_dir.mkdir(parents=True, exist_ok=True)
    database = settings.data_dir / "index.sqlite"
    return Services(
        settings=settings,
        blobs=FilesystemBlobStore(settings.data_dir / "blobs"),
        index=SqliteIndexStore(database),
        feed=SqliteChangeFeedStore(database),
        events=InProcessEventBus(),
    )


def services_of(request: Request) -> Services:
    """The adapters behind the app serving ``request`` (set in ``create_app``)."""
    return request.app.state.services
