"""Store one instance: the one path every way an instance arrives goes through.

STOW (a spooled upload), the drop-zone import (a file dropped into ``incoming/``) and repair
(a stored file the index does not know) all end in :meth:`StoreInstance.store`:

1. the file is placed under its instance name, exclusively (the first copy wins, across
   processes): STOW's upload is linked in, a dropped file is moved without being read, a
   stored file is already there;
2. its sidecars (metadata, frame index) are written and, together, its index record and its
   change-feed entry are committed;
3. the event publisher is nudged.

Each step is idempotent, so running it again after a crash, or for a repeated event,
finishes what was left undone and duplicates nothing: ``IndexStore.add_instance`` keeps an
existing record (and its incarnation), ``ChangeFeedStore.append`` ignores a known
``entry_id``.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from enum import IntEnum
from pathlib import Path
from typing import Protocol

from changefeed.port import Action, ChangeEntry, ChangeFeedStore
from dicomcore import layout
from dicomcore.instance import InvalidInstanceError, ParsedInstance, read_instance
from dicomcore.redact import error_summary
from dicomcore.threads import in_thread
from dicomcore.validation import InstanceUids, ValidationError, validate_instance
from dicomweb.storage.port import BlobExistsError, BlobStore
from dicomweb.usecases.sidecars import Derived, SidecarFiles, derive
from indexing.port import IndexStore, InstanceRecord
from indexing.records import change_entry, new_record

log = logging.getLogger(__name__)

ALREADY_STORED_MESSAGE = "an instance with these Study, Series and SOP Instance UIDs is already stored"


@dataclass(frozen=True)
class Prepared:
    """An instance read and checked, ready to store: parse, UIDs and derived sidecars."""

    parsed: ParsedInstance
    uids: InstanceUids
    derived: Derived

    @property
    def key(self) -> str:
        return layout.instance_key(self.uids.study, self.uids.series, self.uids.sop)


def prepare(parsed: ParsedInstance, bulkdata_threshold: int) -> Prepared:
    """Validate and derive (blocking: run it in a worker thread, with the parse)."""
    uids = validate_instance(parsed.dataset)
    return Prepared(parsed, uids, derive(parsed, uids, bulkdata_threshold))


class FileSource(Protocol):
    """Where the instance's bytes are now; :meth:`place` gives them the instance's name."""

    async def place(self, blobs: BlobStore, name: str) -> None:
        """Raises :class:`BlobExistsError` when ``name`` is taken (the first copy wins)."""
        ...


@dataclass(frozen=True)
class StagedFile:
    """An upload spooled to a local staging path (STOW)."""

    path: Path

    async def place(self, blobs: BlobStore, name: str) -> None:
        await blobs.put_file(name, self.path, exclusive=True)


@dataclass(frozen=True)
class DroppedBlob:
    """A file dropped into the store's ``incoming/`` area (moved, never read whole)."""

    name: str

    async def place(self, blobs: BlobStore, name: str) -> None:
        await blobs.move(self.name, name)


class AlreadyPlaced:
    """A file already stored under its instance name (repair)."""

    async def place(self, blobs: BlobStore, name: str) -> None:
        return None


class StoreInstance:
    """The use case; built once with the ports it needs (see :mod:`dicomweb.composition`)."""

    def __init__(self, blobs: BlobStore, index: IndexStore, feed: ChangeFeedStore, sidecars: SidecarFiles,
                 on_change: Callable[[], None]) -> None:
        self.blobs = blobs
        self.index = index
        self.feed = feed
        self.sidecars = sidecars
        self.on_change = on_change
        """Called after each committed change (nudges the event publisher)."""

    async def store(self, source: FileSource, instance: Prepared) -> bool:
        """Store ``instance`` from ``source``; ``False`` when that instance is already stored.

        A stored copy found unindexed (what a crash between placing and indexing leaves) is
        indexed now, so a re-sent or re-dropped copy repairs it.
        """
        key = instance.key
        try:
            await source.place(self.blobs, layout.file_name(key))
        except BlobExistsError:
            if await self.index.get_instance_by_key(key) is None:
                await self.repair(key)
            return False
        await self._commit(key, instance)
        return True

    async def repair(self, key: str) -> ChangeEntry:
        """Index an instance whose file is already stored (reads its header and item headers)."""
        parsed, _ = await self.sidecars.parse_stored(key)
        instance = await in_thread(prepare, parsed, self.sidecars.bulkdata_threshold)
        return await self._commit(key, instance)

    async def _commit(self, key: str, instance: Prepared) -> ChangeEntry:
        record = new_record(instance.parsed, instance.uids, key, uuid.uuid4().hex, instance.derived.attributes)
        # Together: a reader that finds the record before its sidecars are written gets them
        # rebuilt from the file (dicomweb/usecases/sidecars.py).
        _, entry = await asyncio.gather(self.sidecars.write(key, instance.derived), self._index(record))
        return entry

    async def _index(self, record: InstanceRecord) -> ChangeEntry:
        if not await self.index.add_instance(record):
            record = await self.index.get_instance_by_key(record.instance_key) or record
        entry = await self.feed.append(change_entry(record, Action.CREATE))
        self.on_change()  # events go out in the background; the feed already holds the entry
        return entry


# -- STOW: one spooled part ------------------------------------------------------------------


class FailureReason(IntEnum):
    """FailureReason (0008,1197) codes, as the leading open server uses them."""

    PROCESSING_FAILURE = 0x0110  # 272
    VALIDATION_FAILURE = 0xA900  # 43264
    STUDY_UID_MISMATCH = 0xA901  # 43265
    ALREADY_STORED = 0xB00E  # 45070


@dataclass(frozen=True)
class Outcome:
    """What happened to one STOW part."""

    sop_uid: str | None
    sop_class_uid: str | None
    study_uid: str | None = None
    series_uid: str | None = None
    failure: FailureReason | None = None
    message: str = ""
    warning: str = ""
    """Stored, but with a caveat the sender should know (e.g. frames that cannot be located)."""

    @property
    def stored(self) -> bool:
        return self.failure is None


def _read_staged(path: Path, bulkdata_threshold: int) -> Prepared:
    """Parse, validate and derive in one trip to a worker thread."""
    with open(path, "rb") as reader:
        parsed = read_instance(reader)
    return prepare(parsed, bulkdata_threshold)


async def store_upload(use_case: StoreInstance, path: Path, study_in_path: str | None) -> Outcome:
    """Store the spooled upload at ``path`` (consumed: moved into the store or removed).

    Never raises for a bad instance: each part fails alone, so the rest of a request is stored.
    """
    try:
        return await _store_upload(use_case, path, study_in_path)
    except Exception as exc:  # an unexpected fault fails this instance, not the request
        log.error("storing an instance failed (%s)", error_summary(exc))  # no message: it may quote values
        return Outcome(None, None, failure=FailureReason.PROCESSING_FAILURE, message=f"processing failure: {exc}")
    finally:
        path.unlink(missing_ok=True)


async def _store_upload(use_case: StoreInstance, path: Path, study_in_path: str | None) -> Outcome:
    try:
        instance = await in_thread(_read_staged, path, use_case.sidecars.bulkdata_threshold)
    except InvalidInstanceError as exc:
        return Outcome(None, None, failure=FailureReason.VALIDATION_FAILURE, message=str(exc))
    except ValidationError as exc:
        return Outcome(exc.sop_uid, exc.sop_class_uid, failure=FailureReason.VALIDATION_FAILURE, message=str(exc))
    uids = instance.uids
    if study_in_path is not None and uids.study != study_in_path:
        return _outcome(uids, FailureReason.STUDY_UID_MISMATCH,
                        f"StudyInstanceUID {uids.study} does not match the study in the URL, {study_in_path}")
    if not await use_case.store(StagedFile(path), instance):
        return _outcome(uids, FailureReason.ALREADY_STORED, ALREADY_STORED_MESSAGE)
    return _outcome(uids, None, warning=_frames_warning(instance.parsed))


def _frames_warning(parsed: ParsedInstance) -> str:
    if parsed.frames.warning is None:
        return ""
    return (f"{parsed.frames.warning}; the instance is stored and retrievable whole, and its frames "
            "are served by reading the whole file")


def _outcome(uids: InstanceUids, failure: FailureReason | None, message: str = "", warning: str = "") -> Outcome:
    return Outcome(uids.sop, uids.sop_class, uids.study, uids.series, failure, message, warning)
