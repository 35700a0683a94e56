"""Store one instance: the one path every way an instance arrives goes through.

STOW (a spooled upload), the drop-zone import (a file dropped into ``incoming/``) and repair
(a stored file the index does not know) all end in :meth:`StoreInstance.store`:

1. the file is placed under its instance name, exclusively (the first copy wins, across
   processes): STOW's upload is linked in, a dropped file is moved without being read, a
   stored file is already there;
2. its index record and its create entry are committed, as one unit
   (``IndexStore.add_instance``, through the derived store, which adds the frame index to
   the commit where the index holds it: SQLite); if that fails (a full disk, the database unreachable)
   the file placed in step 1 is removed again, so a client told "failed" never leaves a
   stored file behind, and its retry is stored fresh;
3. where the derived data lives in files beside the instance (Blob Storage), its sidecars
   (metadata, frame index) are written: a cache, rebuilt from the file when missing, so
   failing to write them fails nothing (:mod:`dicomweb.usecases.derived_store`);
4. the event publisher is nudged.

Each step is idempotent, so running it again after a crash, or for a repeated event,
finishes what was left undone and duplicates nothing: ``IndexStore.add_instance`` keeps an
existing record (and its incarnation) and its entry id. A deleted instance (tombstoned)
is indexed again only from a freshly placed file, never by repair (docs/architecture.md,
"Files, index and feed: one unit").
"""

from __future__ import annotations

import hashlib
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from enum import IntEnum
from pathlib import Path
from typing import Protocol

from dicomcore import layout
from dicomcore.capacity import is_out_of_space
from dicomcore.faults import crash_point
from dicomcore.instance import InvalidInstanceError, ParsedInstance, read_instance, read_instance_bytes
from dicomcore.redact import error_summary
from dicomcore.threads import in_thread
from dicomcore.validation import InstanceUids, ValidationError, validate_instance
from dicomweb.storage.port import BlobExistsError, BlobStore, BlockingBlobWrites
from dicomweb.usecases.derived_store import DerivedStore
from dicomweb.usecases.sidecars import Derived, derive
from indexing.port import BlockingIndexWrites, IndexStore, InstanceRecord
from indexing.records import new_record

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

    @property
    def sha256(self) -> str:
        """The file's SHA-256 when it was computed on the way in (else empty)."""
        ...

    async def place(self, blobs: BlobStore, name: str) -> None:
        """Raises :class:`BlobExistsError` when ``name`` is taken (the first copy wins)."""
        ...


@dataclass(frozen=True)
class StagedFile:
    """An upload spooled to a local staging path (STOW), with its digest taken while spooling."""

    path: Path
    sha256: str = ""

    async def place(self, blobs: BlobStore, name: str) -> None:
        await blobs.put_file(name, self.path, exclusive=True)


@dataclass(frozen=True)
class DroppedBlob:
    """A file dropped into the store's ``incoming/`` area (moved, never read whole)."""

    name: str
    sha256: str = ""

    async def place(self, blobs: BlobStore, name: str) -> None:
        await blobs.move(self.name, name)


class DeleteInProgressError(RuntimeError):
    """The instance is being deleted by a live request; a re-send must wait for it."""


class StoreStepError(Exception):
    """A failure of the one-trip store (:meth:`StoreInstance.store_staged_blocking`) after
    the parse: which ``instance`` it was, the ``cause``, and the record whose file was
    placed (``placed``) when it was indexing that failed: the caller removes that file again
    (:meth:`StoreInstance.undo_placement`) and answers for ``cause``."""

    def __init__(self, instance: Prepared, cause: Exception, placed: InstanceRecord | None) -> None:
        super().__init__("storing a spooled upload failed")
        self.instance = instance
        self.cause = cause
        self.placed = placed


class StoreInstance:
    """The use case; built once with the ports it needs (see :mod:`dicomweb.composition`)."""

    def __init__(self, blobs: BlobStore, index: IndexStore, sidecars: DerivedStore,
                 on_change: Callable[[], None], delete_lease_seconds: float = 10.0) -> None:
        self.blobs = blobs
        self.index = index
        self.sidecars = sidecars
        """Where the derived data (metadata, frame index) lives: sidecar files, or the index."""
        self.on_change = on_change
        """Called after each committed change (nudges the event publisher)."""
        self.delete_lease_seconds = delete_lease_seconds
        """How long a pending delete's claim keeps a re-send of its instance waiting."""
        self.blocking = (blobs, index) if isinstance(blobs, BlockingBlobWrites) and isinstance(
            index, BlockingIndexWrites) else None
        """The stores' blocking writes, when both are local (a folder and SQLite): a STOW
        part is then parsed, placed, indexed and given its sidecars in one worker trip."""

    async def store(self, source: FileSource, instance: Prepared) -> bool:
        """Store ``instance`` from ``source``; ``False`` when that instance is already stored.

        A stored copy found unindexed (what a crash between placing and indexing leaves) is
        indexed now and counts as this store; a copy left by an unfinished delete is
        removed and this one stored fresh.
        """
        key = instance.key
        try:
            await source.place(self.blobs, layout.file_name(key))
        except BlobExistsError:
            if await self.index.get_instance_by_key(key) is not None:
                return False
            if not await self._clear_deleted_copy(key, instance.uids):
                # A stored copy nobody indexed (a crash between link and index, or a
                # concurrent sender's copy about to be): indexed now. It counts as this
                # store only if it holds these very bytes.
                return await self.repair(key) and await self._holds(key, source.sha256)
            await source.place(self.blobs, layout.file_name(key))
        await self._commit(key, instance, sha256=source.sha256, fresh=True)
        return True

    def store_staged_blocking(self, staged: StagedFile, instance: Prepared, data: bytes | None = None) -> bool:
        """:meth:`store` for a spooled upload, in the calling (worker) thread: place, index,
        sidecars, with no trip back to the event loop between them. With ``data`` (an upload
        received in memory, nothing at ``staged.path``) the bytes are written once, straight
        to their place (``BlockingBlobWrites.put_new_bytes_blocking``). ``False`` when the
        instance's name is taken: the caller then runs :meth:`store`, whose rare paths
        (already stored, a copy left by a crash or a delete) need the async ports. Raises
        :class:`StoreStepError` when placing or indexing failed. The caller calls
        :attr:`on_change` after (on the event loop). Requires :attr:`blocking`."""
        assert self.blocking is not None
        blobs, _ = self.blocking
        key = instance.key
        try:
            if data is None:
                blobs.put_file_blocking(layout.file_name(key), staged.path, exclusive=True)
            else:
                blobs.put_new_bytes_blocking(layout.file_name(key), data)
        except BlobExistsError:
            return False
        except Exception as exc:
            raise StoreStepError(instance, exc, None) from exc
        record = self._record(key, instance, staged.sha256)
        try:
            self.sidecars.add_instance_blocking(record, instance.derived, fresh=True)
        except Exception as exc:
            raise StoreStepError(instance, exc, record) from exc
        crash_point("after-index-commit")
        try:
            self.sidecars.write_blocking(blobs, key, instance.derived)
        except Exception:  # a cache: rebuilt from the file when read (usecases/sidecars.py)
            log.warning("sidecars of %s not written; they are rebuilt when read", layout.file_name(key),
                        exc_info=True)
        return True

    async def undo_placement(self, failure: StoreStepError) -> None:
        """Remove the file a :class:`StoreStepError` placed, if it placed one."""
        if failure.placed is not None:
            await self._undo_placement(failure.placed, failure.cause)

    async def _holds(self, key: str, sha256: str) -> bool:
        """The stored file has this SHA-256 (read whole: only on the rare path above)."""
        if not sha256:
            return False
        digest = hashlib.sha256()
        async for chunk in self.blobs.iter_chunks(layout.file_name(key), chunk_size=4 << 20):
            digest.update(chunk)
        return digest.hexdigest() == sha256

    async def _clear_deleted_copy(self, key: str, uids: InstanceUids) -> bool:
        """Remove the stored copy of a deleted instance (its delete crashed before removing
        it); ``False`` when the instance is not deleted. A delete still running (its claim
        younger than the lease) makes this raise :class:`DeleteInProgressError`."""
        if not await self.index.is_deleted(key):
            return False
        pending = await self.index.pending_deletes(uids.study, uids.series, uids.sop)
        unfinished = next((record for record in pending if record.instance_key == key), None)
        if unfinished is not None and not await self.index.claim_delete(
                unfinished, uuid.uuid4().hex, self.delete_lease_seconds):
            raise DeleteInProgressError("a delete of this instance is in progress; send it again in a few seconds")
        for name in (layout.metadata_name(key), layout.frames_name(key), layout.file_name(key)):
            await self.blobs.delete(name)
        if unfinished is not None:  # (a done tombstone stays done)
            await self.index.finish_delete(unfinished)
        return True

    async def repair(self, key: str) -> bool:
        """Index an instance whose file is already stored (reads its header and item headers).

        ``False`` when the instance is deleted (tombstoned): repair never brings it back.
        """
        parsed, _ = await self.sidecars.parse_stored(key)
        instance = await in_thread(prepare, parsed, self.sidecars.bulkdata_threshold)
        return await self._commit(key, instance, sha256="", fresh=False)

    @staticmethod
    def _record(key: str, instance: Prepared, sha256: str) -> InstanceRecord:
        return new_record(instance.parsed, instance.uids, key, uuid.uuid4().hex, instance.derived.attributes, sha256)

    async def _commit(self, key: str, instance: Prepared, *, sha256: str, fresh: bool) -> bool:
        record = self._record(key, instance, sha256)
        try:
            added = await self.sidecars.add_instance(record, instance.derived, fresh=fresh)
        except BaseException as exc:
            if fresh:
                await self._undo_placement(record, exc)
            raise
        crash_point("after-index-commit")
        if not added and not fresh and await self.index.get_instance_by_key(key) is None:
            return False  # tombstoned: not indexed
        try:
            await self.sidecars.write(key, instance.derived)
        except Exception:  # a cache: rebuilt from the file when read (usecases/sidecars.py)
            log.warning("sidecars of %s not written; they are rebuilt when read", layout.file_name(key),
                        exc_info=True)
        self.on_change()  # events go out in the background; the feed already holds the entry
        return True

    async def _undo_placement(self, record: InstanceRecord, cause: BaseException) -> None:
        """The index refused a file just placed: remove it again, unless the record did
        commit after all (then the file belongs to it)."""
        try:
            if await self.index.get_instance(record.study_uid, record.series_uid, record.sop_uid) is None:
                await self.blobs.delete(layout.file_name(record.instance_key))
        except Exception:
            log.exception("could not undo placing %s; verify --repair will", layout.file_name(record.instance_key))
        log.warning("indexing %s failed (%s), its file was removed again",
                    layout.file_name(record.instance_key), "out of space" if is_out_of_space(cause)
                    else type(cause).__name__)


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
    out_of_space: bool = False
    """Failed because a store is full: STOW answers 507 when nothing was stored."""

    @property
    def stored(self) -> bool:
        return self.failure is None


def _read_staged(path: Path, bulkdata_threshold: int) -> Prepared:
    """Parse, validate and derive in one trip to a worker thread."""
    with open(path, "rb") as reader:
        parsed = read_instance(reader)
    return prepare(parsed, bulkdata_threshold)


async def store_upload(use_case: StoreInstance, path: Path, study_in_path: str | None, sha256: str = "",
                       data: bytes | None = None) -> Outcome:
    """Store the spooled upload at ``path`` (consumed: moved into the store or removed), or,
    with ``data``, the upload received in memory (``path`` is then where it is staged if the
    fast path cannot place it; ``sha256`` is computed here).

    Never raises for a bad instance: each part fails alone, so the rest of a request is stored.
    """
    staging = _Staging(path, may_exist=data is None)
    try:
        return await _store_upload(use_case, staging, study_in_path, sha256, data)
    except Exception as exc:  # an unexpected fault fails this instance, not the request
        log.error("storing an instance failed (%s)", error_summary(exc))  # no message: it may quote values
        # The answer names where it failed, not the exception's text: pydicom's messages may
        # quote the element's bytes (patient data must not reach error pages).
        return Outcome(None, None, failure=FailureReason.PROCESSING_FAILURE,
                       message=f"processing failure ({error_summary(exc)})")
    finally:
        if staging.may_exist:  # (an unlink that fails costs an exception, on the event loop)
            path.unlink(missing_ok=True)


@dataclass
class _Staging:
    """An upload's staging path, and whether a file may be there to remove."""

    path: Path
    may_exist: bool


def _study_matches(instance: Prepared, study_in_path: str | None) -> bool:
    return study_in_path is None or instance.uids.study == study_in_path


def _read_and_store_blocking(use_case: StoreInstance, staged: StagedFile, study_in_path: str | None
                             ) -> tuple[Prepared, bool]:
    """Parse, validate, derive and, on the fast path, store: one worker trip per STOW part.
    The flag says whether it was stored; ``False`` leaves the rest to the async path."""
    instance = _read_staged(staged.path, use_case.sidecars.bulkdata_threshold)
    if use_case.blocking is None or not _study_matches(instance, study_in_path):
        return instance, False
    return instance, use_case.store_staged_blocking(staged, instance)


def _read_and_store_buffered_blocking(use_case: StoreInstance, data: bytes, staging: _Staging,
                                      study_in_path: str | None) -> tuple[Prepared, bool, StagedFile]:
    """:func:`_read_and_store_blocking` for an upload received in memory: parsed from the
    buffer (no file read back), hashed whole here (hashlib releases the GIL), written once.
    When it is not stored now (a network store, its name taken) it is staged at ``path``
    for the async path, unless its study does not match (then nothing is written)."""
    instance = prepare(read_instance_bytes(data), use_case.sidecars.bulkdata_threshold)
    staged = StagedFile(staging.path, hashlib.sha256(data).hexdigest())
    if not _study_matches(instance, study_in_path):
        return instance, False, staged
    if use_case.blocking is not None and use_case.store_staged_blocking(staged, instance, data):
        return instance, True, staged
    staging.may_exist = True
    try:
        with open(staging.path, "xb") as out:  # the async path places a file (put_file fsyncs it)
            out.write(data)
    except OSError as exc:  # e.g. a full disk: this instance fails with a 272 saying so
        raise StoreStepError(instance, exc, None) from exc
    return instance, False, staged


async def _store_upload(use_case: StoreInstance, staging: _Staging, study_in_path: str | None, sha256: str,
                        data: bytes | None) -> Outcome:
    staged = StagedFile(staging.path, sha256)
    try:
        if data is None:
            instance, stored_now = await in_thread(_read_and_store_blocking, use_case, staged, study_in_path)
        else:
            instance, stored_now, staged = await in_thread(
                _read_and_store_buffered_blocking, use_case, data, staging, study_in_path)
    except InvalidInstanceError as exc:
        return Outcome(None, None, failure=FailureReason.VALIDATION_FAILURE, message=str(exc))
    except ValidationError as exc:
        return Outcome(exc.sop_uid, exc.sop_class_uid, failure=FailureReason.VALIDATION_FAILURE, message=str(exc))
    except StoreStepError as failure:
        await use_case.undo_placement(failure)
        return _store_failed(failure.instance.uids, failure.cause)
    uids = instance.uids
    if stored_now:
        use_case.on_change()  # events go out in the background; the feed already holds the entry
        return _outcome(uids, None, warning=_frames_warning(instance.parsed))
    if not _study_matches(instance, study_in_path):
        return _outcome(uids, FailureReason.STUDY_UID_MISMATCH,
                        f"StudyInstanceUID {uids.study} does not match the study in the URL, {study_in_path}")
    try:
        stored = await use_case.store(staged, instance)
    except DeleteInProgressError as exc:
        return _outcome(uids, FailureReason.PROCESSING_FAILURE, str(exc))
    except Exception as exc:
        return _store_failed(uids, exc)
    if not stored:
        return _outcome(uids, FailureReason.ALREADY_STORED, ALREADY_STORED_MESSAGE)
    return _outcome(uids, None, warning=_frames_warning(instance.parsed))


def _store_failed(uids: InstanceUids, exc: Exception) -> Outcome:
    """A full store fails this instance with a 272 saying so; anything else is raised."""
    if not is_out_of_space(exc):
        raise exc
    return Outcome(uids.sop, uids.sop_class, uids.study, uids.series, FailureReason.PROCESSING_FAILURE,
                   f"insufficient storage: {_cause(exc)}; nothing was stored, send it again when space is freed",
                   out_of_space=True)


def _cause(exc: BaseException) -> str:
    """Which store is full, in words (no path, no patient data)."""
    return exc.strerror or "no space left" if isinstance(exc, OSError) else "no space left"


def _frames_warning(parsed: ParsedInstance) -> str:
    if parsed.frames.warning is None:
        return ""
    return (f"{parsed.frames.warning}; the instance is stored and retrievable whole, and its frames "
            "are served by reading the whole file")


def _outcome(uids: InstanceUids, failure: FailureReason | None, message: str = "", warning: str = "") -> Outcome:
    return Outcome(uids.sop, uids.sop_class, uids.study, uids.series, failure, message, warning)
