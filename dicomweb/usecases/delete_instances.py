"""Delete a study, a series or an instance: the order of the steps.

Order: the index first (so the data vanishes from QIDO and WADO at once), then the
change-feed entries, then the blobs. A crash part way leaves, at worst, unreferenced
files, never an index record pointing at a missing file.
"""

from __future__ import annotations

from collections.abc import Callable

from changefeed.port import Action, ChangeFeedStore
from dicomcore import layout
from dicomweb.storage.port import BlobStore
from indexing.port import IndexStore, InstanceRecord
from indexing.records import change_entry


class DeleteInstances:
    """The use case; built once with the ports it needs (see :mod:`dicomweb.composition`)."""

    def __init__(self, blobs: BlobStore, index: IndexStore, feed: ChangeFeedStore,
                 on_change: Callable[[], None]) -> None:
        self.blobs = blobs
        self.index = index
        self.feed = feed
        self.on_change = on_change

    async def delete(self, study_uid: str, series_uid: str | None = None,
                     sop_uid: str | None = None) -> list[InstanceRecord]:
        """Delete everything under the given UIDs; what was deleted (empty: nothing was there)."""
        removed = await self.index.remove_instances(study_uid, series_uid, sop_uid)
        for record in removed:
            await self.feed.append(change_entry(record, Action.DELETE))
        for record in removed:
            await self._remove_blobs(record)
        if removed:
            self.on_change()
        return removed

    async def _remove_blobs(self, record: InstanceRecord) -> None:
        key = record.instance_key
        for name in (layout.metadata_name(key), layout.frames_name(key), layout.file_name(key)):
            await self.blobs.delete(name)
