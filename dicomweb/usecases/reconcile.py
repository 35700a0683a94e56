"""Reconciliation: compare the files, the index and the change feed, and repair them.

Run in the background at start-up (:mod:`dicomweb.background`, without the digest check)
and on demand (``dicomweb verify [--repair]``, in both modes). What it looks for, in
this order (docs/architecture.md, "Recovery"):

1. feed entries the records and tombstones call for but the feed lacks;
2. deletes a crash left unfinished (pending tombstones): their files are removed;
3. instance files without an index record: indexed, or removed when the instance is
   deleted (tombstoned);
4. records whose instance file is gone: removed, with a delete entry (logged); files whose
   size or SHA-256 differs from the record: reported (the bytes cannot be repaired; the
   record's digest is filled in where an import left it empty);
5. staging files older than the grace period: removed.

Every step is idempotent and safe beside a running server: a file younger than the
settle time may be a STOW between its file and its index write, so an unindexed file is
looked at again after that time before it is indexed.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from dataclasses import asdict, dataclass

from dicomcore import layout
from dicomcore.instance import InvalidInstanceError
from dicomcore.validation import ValidationError
from dicomweb.storage.port import BlobNotFoundError, BlobStore
from dicomweb.usecases.blob_created import SETTLE_SECONDS
from dicomweb.usecases.delete_instances import DeleteInstances
from dicomweb.usecases.store_instance import StoreInstance
from indexing.port import IndexStore, InstanceRecord

log = logging.getLogger(__name__)

PAGE = 500
"""Records read per index query while walking the index."""


@dataclass
class Report:
    """What reconciliation found (and, with repair, fixed), by kind."""

    missing_entries: int = 0
    unfinished_deletes: int = 0
    unindexed_files: int = 0
    deleted_files: int = 0
    invalid_files: int = 0
    missing_files: int = 0
    corrupt_files: int = 0
    digests_filled: int = 0
    staging_leftovers: int = 0
    records_checked: int = 0

    @property
    def damage(self) -> int:
        """Findings that are damage (everything but the digests filled in and the count)."""
        return sum(value for name, value in asdict(self).items() if name not in ("digests_filled", "records_checked"))

    def to_dict(self) -> dict[str, int]:
        return asdict(self)


class Reconcile:
    """The use case; built once with the ports and use cases it needs."""

    def __init__(self, blobs: BlobStore, index: IndexStore, store: StoreInstance, delete: DeleteInstances,
                 staging_grace_seconds: float) -> None:
        self.blobs = blobs
        self.index = index
        self.store = store
        self.delete = delete
        self.staging_grace_seconds = staging_grace_seconds

    async def run(self, *, repair: bool, digests: bool) -> Report:
        report = Report()
        report.missing_entries = await self.index.reconcile_entries(repair=repair)
        pending = await self.index.pending_deletes()
        report.unfinished_deletes = len(pending)
        if repair and pending:
            await self.delete.finish_unfinished()
        await self._files_to_records(report, repair, {record.instance_key for record in pending})
        await self._records_to_files(report, repair, digests)
        report.staging_leftovers = await self.blobs.clean_staging(self.staging_grace_seconds, dry_run=not repair)
        log.info("reconciliation (%s): %s", "repair" if repair else "check", report.to_dict())
        return report

    # -- files without records ----------------------------------------------------------

    async def _files_to_records(self, report: Report, repair: bool, unfinished: set[str]) -> None:
        unindexed = []
        async for name in self.blobs.list_names("instances/"):
            key = layout.key_of_instance_file(name)
            if key is None or key in unfinished:
                continue  # an unfinished delete's file is counted (and removed) as that
            if await self.index.get_instance_by_key(key) is None:
                unindexed.append(key)
        if not unindexed:
            return
        await asyncio.sleep(SETTLE_SECONDS)  # a STOW may be between its file and its record
        for key in unindexed:
            if await self.index.get_instance_by_key(key) is None:
                await self._unindexed(key, report, repair)

    async def _unindexed(self, key: str, report: Report, repair: bool) -> None:
        name = layout.file_name(key)
        if await self.index.is_deleted(key):
            report.deleted_files += 1
            log.warning("instance file %s belongs to a deleted instance%s", name, ": removed" if repair else "")
            if repair:
                for blob in (layout.metadata_name(key), layout.frames_name(key), name):
                    await self.blobs.delete(blob)
            return
        report.unindexed_files += 1
        log.warning("instance file %s has no index record%s", name, ": indexed" if repair else "")
        if not repair:
            return
        try:
            await self.store.repair(key)
        except BlobNotFoundError:
            report.unindexed_files -= 1  # removed meanwhile
        except (InvalidInstanceError, ValidationError) as exc:
            report.unindexed_files -= 1
            report.invalid_files += 1
            log.error("instance file %s is not a valid instance, left in place: %s", name, exc)

    # -- records without files ----------------------------------------------------------

    async def _records_to_files(self, report: Report, repair: bool, digests: bool) -> None:
        after = ""
        while records := await self.index.records_after(after, PAGE):
            after = records[-1].instance_key
            for record in records:
                report.records_checked += 1
                await self._check_file(record, report, repair, digests)

    async def _check_file(self, record: InstanceRecord, report: Report, repair: bool, digests: bool) -> None:
        name = layout.file_name(record.instance_key)
        try:
            size = await self.blobs.size(name)
        except BlobNotFoundError:
            report.missing_files += 1
            if repair:
                await self.delete.drop_vanished([record])
            else:
                log.warning("instance file %s is missing", name)
            return
        if size != record.size:
            report.corrupt_files += 1
            log.error("instance file %s is %d bytes, %d were stored", name, size, record.size)
            return
        if not digests:
            return
        digest = await self._sha256(name)
        if not record.sha256:
            if repair:
                await self.index.set_digest(record.instance_key, digest)
                report.digests_filled += 1
        elif digest != record.sha256:
            report.corrupt_files += 1
            log.error("instance file %s does not match the SHA-256 taken when it was stored", name)

    async def _sha256(self, name: str) -> str:
        digest = hashlib.sha256()
        async for chunk in self.blobs.iter_chunks(name, chunk_size=4 << 20):
            digest.update(chunk)
        return digest.hexdigest()
