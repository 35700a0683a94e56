"""The archive as the sync inside this server sees it: the change-feed store, the index
and the metadata sidecars (the same ports the WADO metadata route reads)."""

from __future__ import annotations

import json

from changefeed.port import ChangeFeedStore
from dicomweb.storage.port import BlobNotFoundError
from dicomweb.usecases.cast.ports import ArchiveUnavailable, FeedEntry, Json
from dicomweb.usecases.derived_store import DerivedStore
from indexing.port import IndexStore


class LocalArchive:
    def __init__(self, feed: ChangeFeedStore, index: IndexStore, sidecars: DerivedStore, service_root: str) -> None:
        self.changes = feed
        self.index = index
        self.sidecars = sidecars
        self._root = service_root

    @property
    def service_root(self) -> str:
        return self._root

    async def read(self, after: int, limit: int) -> list[FeedEntry]:
        return [FeedEntry(entry.sequence, entry.study_uid, entry.action.value)
                for entry in await self.changes.read(after, limit)]

    async def study_metadata(self, study_uid: str) -> list[Json]:
        records = await self.index.list_instances(study_uid, None, None)
        try:
            documents = await self.sidecars.read_metadata_many([record.instance_key for record in records])
        except BlobNotFoundError as error:  # deleted between the listing and the read: read again
            raise ArchiveUnavailable("an instance of the study changed while it was read") from error
        return [json.loads(document) for document in documents]

    async def close(self) -> None:
        """Nothing to release: the stores belong to the server."""
