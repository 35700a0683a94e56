"""Storing one spooled instance file: parse, validate, store byte for byte, index.

The outcome is what the STOW response says about that instance. Nothing here raises for
a bad instance: each part fails alone, so the rest of the request is still stored.
"""

from __future__ import annotations

import asyncio
import logging
import os
import uuid
from dataclasses import dataclass
from enum import IntEnum
from pathlib import Path

from starlette.concurrency import run_in_threadpool

from dicomweb.dicom.instance import InvalidInstanceError, ParsedInstance, read_instance
from dicomweb.services import Services
from dicomweb.storage import layout
from dicomweb.storage.port import BlobExistsError
from indexing import sidecars
from indexing.indexer import build_record, index_instance, index_stored_file
from indexing.validation import InstanceUids, ValidationError, validate_instance

log = logging.getLogger(__name__)

ALREADY_STORED_MESSAGE = "an instance with these Study, Series and SOP Instance UIDs is already stored"


class FailureReason(IntEnum):
    """FailureReason (0008,1197) codes, as the leading open server uses them."""

    PROCESSING_FAILURE = 0x0110  # 272
    VALIDATION_FAILURE = 0xA900  # 43264
    STUDY_UID_MISMATCH = 0xA901  # 43265
    ALREADY_STORED = 0xB00E  # 45070


@dataclass(frozen=True)
class Outcome:
    """What happened to one part."""

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


def _read(path: Path, bulkdata_threshold: int) -> tuple[InstanceUids, ParsedInstance, sidecars.Sidecars]:
    """Parse, validate and derive the sidecars in one trip to a worker thread."""
    with open(path, "rb") as reader:
        parsed = read_instance(reader)
    uids = validate_instance(parsed.dataset)
    return uids, parsed, sidecars.build(parsed, uids, bulkdata_threshold)


async def store_file(services: Services, path: Path, study_in_path: str | None) -> Outcome:
    """Store the spooled file at ``path`` (consumed: moved into the store or removed)."""
    try:
        return await _store(services, path, study_in_path)
    except Exception as exc:  # an unexpected fault fails this instance, not the request
        log.exception("storing an instance failed")
        return Outcome(None, None, failure=FailureReason.PROCESSING_FAILURE, message=f"processing failure: {exc}")
    finally:
        if path.exists():
            os.unlink(path)


async def _store(services: Services, path: Path, study_in_path: str | None) -> Outcome:
    try:
        uids, parsed, derived = await run_in_threadpool(_read, path, services.settings.bulkdata_threshold)
    except InvalidInstanceError as exc:
        return Outcome(None, None, failure=FailureReason.VALIDATION_FAILURE, message=str(exc))
    except ValidationError as exc:
        return Outcome(exc.sop_uid, exc.sop_class_uid, failure=FailureReason.VALIDATION_FAILURE, message=str(exc))
    if study_in_path is not None and uids.study != study_in_path:
        return _outcome(uids, FailureReason.STUDY_UID_MISMATCH,
                        f"StudyInstanceUID {uids.study} does not match the study in the URL, {study_in_path}")
    key = layout.instance_key(uids.study, uids.series, uids.sop)
    try:  # the exclusive write is the duplicate check, atomic across processes
        await services.blobs.put_file(layout.file_name(key), path, exclusive=True)
    except BlobExistsError:
        await _repair_if_unindexed(services, key)
        return _outcome(uids, FailureReason.ALREADY_STORED, ALREADY_STORED_MESSAGE)
    record = build_record(parsed, uids, key, uuid.uuid4().hex, derived.attributes)
    # Together: a reader that finds the record before its sidecars are written gets them
    # rebuilt from the file (indexing/sidecars.py).
    await asyncio.gather(sidecars.write(services, key, derived), index_instance(services, record))
    return _outcome(uids, None, warning=_frames_warning(parsed))


async def _repair_if_unindexed(services: Services, key: str) -> None:
    """A stored file with no index record is what a crash between the two leaves; the
    re-sent copy is refused (the first write wins) but the stored one is indexed now."""
    if await services.index.get_instance_by_key(key) is None:
        await index_stored_file(services, key)


def _frames_warning(parsed: ParsedInstance) -> str:
    if parsed.frames.warning is None:
        return ""
    return (f"{parsed.frames.warning}; the instance is stored and retrievable whole, and its frames "
            "are served by reading the whole file")


def _outcome(uids: InstanceUids, failure: FailureReason | None, message: str = "", warning: str = "") -> Outcome:
    return Outcome(uids.sop, uids.sop_class, uids.study, uids.series, failure, message, warning)
