"""The one handler for "a blob was created", in both modes: Event Grid calls it through the
Functions blob trigger, the embedded store's in-process bus and the drop-zone scanner
locally (:mod:`dicomweb.storage.local_events`, :mod:`dicomweb.usecases.dropzone`).

What happens depends on the blob's name (:mod:`dicomcore.layout`):

- an instance file (``instances/…/instance.dcm``, written by STOW or by an import): a no-op
  when the index has it (one lookup, nothing read) or when the instance is deleted (a
  tombstone: the event of a file a DELETE is removing, or removed, must not index it
  again), else it is indexed, which repairs a crash between writing the file and indexing it;
- a file in the drop zone (``incoming/…``: bulk import, uploads too large for one request):
  parsed with ranged reads (header and item headers only), validated and stored by
  :class:`~dicomweb.usecases.store_instance.StoreInstance` (moved into the instance layout
  without being read, indexed and entered in the change feed); a duplicate
  or invalid file is moved to ``failed/`` with a note (:mod:`dicomweb.usecases.failures`);
- anything else (sidecars, ``state/``, ``failed/``, another container): ignored.

Delivery is at least once and unordered, so every path is idempotent: an event for a blob
that no longer exists (already moved, or deleted) is a no-op, and concurrent deliveries of
one event meet in the exclusive, idempotent move and in the index's and the feed's
idempotent adds. What a retry cannot fix (an invalid file) is settled here; anything else
(storage or database unreachable) is raised, so the delivery is retried.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from dicomcore import layout
from dicomcore.instance import InvalidInstanceError, read_instance
from dicomcore.threads import in_thread
from dicomcore.validation import InstanceUids, ValidationError
from dicomweb.storage.blob_events import BlobCreated, parse_event
from dicomweb.storage.port import BlobNotFoundError, BlobStore, NotRegularFileError
from dicomweb.usecases.failures import quarantine
from dicomweb.usecases.store_instance import DroppedBlob, Prepared, StoreInstance, prepare
from indexing.port import IndexStore

log = logging.getLogger(__name__)

SETTLE_SECONDS = 2.0
"""How old an instance file must be before its event concludes that nobody is indexing it.
STOW indexes what it stores before answering, but its file's event may arrive first."""

DUPLICATE_REASON = "an instance with these Study, Series and SOP Instance UIDs is already stored"


class Outcome(StrEnum):
    """What handling one event did."""

    IGNORED = "ignored"
    """Not a blob the indexer handles (a sidecar, state, another container, another event)."""
    GONE = "gone"
    """The blob no longer exists: a late or repeated event."""
    ALREADY_INDEXED = "already-indexed"
    INDEXED = "indexed"
    """An instance file that was not indexed is now (repair)."""
    DELETED = "deleted"
    """An instance file of a deleted instance: not indexed (its delete, or verify, removes it)."""
    IMPORTED = "imported"
    """A dropped file is now stored and indexed."""
    DUPLICATE = "duplicate"
    """A dropped file whose instance is already stored: moved to failed/."""
    INVALID = "invalid"
    """Not a valid instance: a dropped file is moved to failed/, a stored one only logged."""
    FAILED = "failed"
    """Handling a dropped file kept failing (drop-zone scan): moved to failed/ with the error."""


class BlobCreatedHandler:
    """The use case; built once with the ports it needs (see :mod:`dicomweb.composition`)."""

    def __init__(self, container: str, blobs: BlobStore, index: IndexStore, store: StoreInstance) -> None:
        self.container = container
        self.blobs = blobs
        self.index = index
        self.store = store

    async def handle_event(self, payload: Mapping[str, Any]) -> Outcome:
        """Handle one Event Grid or CloudEvents payload (any event type; only BlobCreated acts)."""
        blob = parse_event(payload)
        if blob is None:
            return Outcome.IGNORED
        return await self.handle(blob)

    async def handle(self, blob: BlobCreated) -> Outcome:
        if blob.container != self.container:
            return Outcome.IGNORED
        key = layout.key_of_instance_file(blob.name)
        if key is not None:
            return await self._index_instance_file(key, blob.event_time)
        if blob.name.startswith(layout.INCOMING_PREFIX):
            return await self._import_dropped(blob.name)
        return Outcome.IGNORED

    async def _indexed(self, key: str) -> bool:
        return await self.index.get_instance_by_key(key) is not None

    async def _index_instance_file(self, key: str, created: datetime | None) -> Outcome:
        if await self._indexed(key):
            return Outcome.ALREADY_INDEXED
        if await self.index.is_deleted(key):
            return Outcome.DELETED
        if await _wait_until_settled(created) and await self._indexed(key):
            return Outcome.ALREADY_INDEXED  # its writer indexed it meanwhile
        try:
            _, uids = await self.store.sidecars.parse_stored(key)
        except BlobNotFoundError:
            return Outcome.GONE
        except (InvalidInstanceError, ValidationError) as exc:
            # The reason is not logged: pydicom's and validation's messages may quote values.
            log.error("stored file %s is not a valid instance (%s), not indexed",
                      layout.file_name(key), type(exc).__name__)
            return Outcome.INVALID
        if _key_of(uids) != key:
            log.error("stored file %s holds another instance's UIDs, not indexed", layout.file_name(key))
            return Outcome.INVALID
        try:
            if not await self.store.repair(key):
                return Outcome.DELETED  # deleted while this event was parsing it
        except BlobNotFoundError:
            return Outcome.GONE
        log.info("indexed stored file %s, which had no index record", layout.file_name(key))
        return Outcome.INDEXED

    def _prepare_blob(self, name: str) -> Prepared:
        with self.blobs.open_reader(name) as reader:  # ranged reads: header and item headers only
            parsed = read_instance(reader)
        return prepare(parsed, self.store.sidecars.bulkdata_threshold)

    async def _import_dropped(self, name: str) -> Outcome:
        try:
            instance = await in_thread(self._prepare_blob, name)
        except BlobNotFoundError:
            return Outcome.GONE
        except (InvalidInstanceError, ValidationError, NotRegularFileError) as exc:
            await quarantine(self.blobs, name, str(exc))
            return Outcome.INVALID
        try:
            stored = await self.store.store(DroppedBlob(name), instance)
        except BlobNotFoundError:
            return Outcome.GONE  # another delivery of this event moved it first
        except NotRegularFileError as exc:  # swapped for a link or FIFO after it was read
            await quarantine(self.blobs, name, str(exc))
            return Outcome.INVALID
        if not stored:
            # The stored copy, if a crash had left it unindexed, was indexed by store().
            await quarantine(self.blobs, name, DUPLICATE_REASON, instance.uids)
            return Outcome.DUPLICATE
        log.info("imported dropped file %a as instance %s", name, instance.uids.sop)
        return Outcome.IMPORTED


async def _wait_until_settled(created: datetime | None) -> bool:
    """Wait until a just-created file is :data:`SETTLE_SECONDS` old; ``True`` if it waited.

    Its writer (STOW, or an import) is then almost surely done indexing it, and this event
    costs one more lookup instead of a second parse racing the first. With no creation time
    (the Functions blob trigger does not pass the event's), the file is taken as new: the
    wait costs only the rare event that finds a file unindexed.
    """
    age = (datetime.now(UTC) - created).total_seconds() if created is not None else 0.0
    remaining = SETTLE_SECONDS - age
    if remaining <= 0:
        return False
    await asyncio.sleep(min(remaining, SETTLE_SECONDS))  # bounded even if the clocks disagree
    return True


def _key_of(uids: InstanceUids) -> str:
    return layout.instance_key(uids.study, uids.series, uids.sop)
