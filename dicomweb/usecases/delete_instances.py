"""Delete a study, a series or an instance: the order of the steps, and their recovery.

1. The intent, as one unit (``IndexStore.remove_instances``): the records go, each
   instance's delete entry is committed and a *pending tombstone* claimed by this request
   stays. From here on QIDO and WADO do not find the instances, and no blob event or
   repair indexes them again (``add_instance`` refuses a tombstoned instance unless its
   file was placed fresh).
2. The files: for each instance, its claim is renewed, its files are removed (the
   instance file last) and its tombstone is marked done.

A crash between or inside the steps leaves pending tombstones. Whoever comes next
finishes them: a second DELETE of the same UIDs, a re-send of the instance (which then
stores it fresh), the start-up reconciliation and ``dicomweb verify``. A claim is a
lease: a tombstone whose claim is younger than ``lease_seconds`` belongs to a live
deleter, and a re-send waits for it instead of racing its file removals.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable

from dicomcore import layout
from dicomcore.faults import crash_point
from dicomweb.storage.port import BlobNotFoundError, BlobStore
from indexing.port import IndexStore, InstanceRecord

log = logging.getLogger(__name__)


class DeleteInstances:
    """The use case; built once with the ports it needs (see :mod:`dicomweb.composition`)."""

    def __init__(self, blobs: BlobStore, index: IndexStore, on_change: Callable[[], None],
                 lease_seconds: float = 10.0) -> None:
        self.blobs = blobs
        self.index = index
        self.on_change = on_change
        self.lease_seconds = lease_seconds

    async def delete(self, study_uid: str, series_uid: str | None = None,
                     sop_uid: str | None = None) -> list[InstanceRecord]:
        """Delete everything under the given UIDs, finishing any earlier delete of them that
        a crash left unfinished; what was deleted (empty: nothing was there)."""
        owner = uuid.uuid4().hex
        removed = await self.index.remove_instances(study_uid, series_uid, sop_uid, owner=owner)
        if removed:
            self.on_change()
        crash_point("after-delete-commit")
        pending = await self.index.pending_deletes(study_uid, series_uid, sop_uid)
        unclaimed = await self._finish(pending, owner)
        if unclaimed:
            # Maybe a crashed deleter's claims, not yet expired: wait them out once (bounded
            # by the lease) rather than answer with the files still there. A live deleter
            # renews its claims and finishes them itself.
            await asyncio.sleep(self.lease_seconds)
            await self._finish(unclaimed, owner)
        known = {record.instance_key for record in removed}
        return removed + [record for record in pending if record.instance_key not in known]

    async def finish_unfinished(self) -> int:
        """Finish every delete a crash left (start-up, ``verify``); how many instances."""
        pending = await self.index.pending_deletes()
        return len(pending) - len(await self._finish(pending, uuid.uuid4().hex))

    async def _finish(self, pending: list[InstanceRecord], owner: str) -> list[InstanceRecord]:
        """Remove the files of each pending delete this owner can claim; the others."""
        unclaimed = []
        for number, record in enumerate(pending):
            if not await self.index.claim_delete(record, owner, self.lease_seconds):
                unclaimed.append(record)
                continue
            await self._remove_files(record.instance_key)
            await self.index.finish_delete(record)
            if number == 0:
                crash_point("mid-delete")
        return unclaimed

    async def drop_vanished(self, records: list[InstanceRecord]) -> list[InstanceRecord]:
        """Remove (with a delete entry, logged) the records among ``records`` whose instance
        file is gone: removed behind the server's back, found by a read. Returns those."""
        dropped = []
        for record in records:
            name = layout.file_name(record.instance_key)
            try:
                await self.blobs.size(name)
                continue
            except BlobNotFoundError:
                pass
            log.warning("instance file %s is missing: its index record is removed, with a delete entry", name)
            dropped += await self.delete(record.study_uid, record.series_uid, record.sop_uid)
        return dropped

    async def _remove_files(self, key: str) -> None:
        # The instance file last: while it exists, a re-send finds the name taken and
        # waits for this delete rather than placing its copy under removals still to come.
        for name in (layout.metadata_name(key), layout.frames_name(key), layout.file_name(key)):
            await self.blobs.delete(name)
