"""Turning a stored instance file into its sidecars, index record and change-feed entry.

One code path for every way an instance arrives: STOW (after its file is stored), the
blob-created event, and repair. Each step is idempotent, so running it again after a
crash or for a repeated event finishes what was left undone and duplicates nothing:

1. sidecars (metadata JSON, frame index: :mod:`indexing.sidecars`) are rewritten from the file;
2. ``IndexStore.add_instance`` is a no-op for a known ``instance_key`` (the existing
   record, and so its incarnation, is kept);
3. ``ChangeFeedStore.append`` is a no-op for a known ``entry_id``
   (``{instance_key}:{incarnation}:create``).
"""

from __future__ import annotations

import logging
import uuid

from starlette.concurrency import run_in_threadpool

from changefeed.port import Action, ChangeEntry
from changefeed.sqlite_store import utc_now
from dicomweb.dicom.instance import ParsedInstance
from dicomweb.services import Services
from indexing import sidecars
from indexing.port import InstanceRecord
from indexing.validation import InstanceUids

log = logging.getLogger(__name__)


def build_record(
    parsed: ParsedInstance, uids: InstanceUids, key: str, incarnation: str, attributes: dict
) -> InstanceRecord:
    return InstanceRecord(
        study_uid=uids.study,
        series_uid=uids.series,
        sop_uid=uids.sop,
        sop_class_uid=uids.sop_class,
        instance_key=key,
        incarnation=incarnation,
        transfer_syntax_uid=parsed.transfer_syntax_uid,
        number_of_frames=parsed.frames.number_of_frames,
        size=parsed.size,
        attributes=attributes,
        stored_at=utc_now(),
    )


def change_entry(record: InstanceRecord, action: Action) -> ChangeEntry:
    """The feed entry for ``action`` on this stored copy; its id makes appending it idempotent."""
    return ChangeEntry(
        entry_id=f"{record.instance_key}:{record.incarnation}:{action.value}",
        action=action,
        study_uid=record.study_uid,
        series_uid=record.series_uid,
        sop_uid=record.sop_uid,
        sop_class_uid=record.sop_class_uid,
        instance_key=record.instance_key,
        incarnation=record.incarnation,
    )


async def index_instance(services: Services, record: InstanceRecord) -> ChangeEntry:
    """Index the record (if new) and append its create entry (if new); publish it."""
    if not await services.index.add_instance(record):
        existing = await services.index.get_instance_by_key(record.instance_key)
        record = existing or record
    entry = await services.feed.append(change_entry(record, Action.CREATE))
    services.publisher.kick()  # events go out in the background; the feed already holds the entry
    return entry


async def index_stored_file(services: Services, key: str) -> ChangeEntry:
    """Index an instance whose file is already in the store (event and repair path).

    Reads only the file's header and pixel-data item headers.
    """
    parsed, uids = await sidecars.parse_stored(services, key)
    return await index_parsed(services, key, parsed, uids)


async def index_parsed(services: Services, key: str, parsed: ParsedInstance, uids: InstanceUids) -> ChangeEntry:
    """Index the stored file ``key`` from its parse (a file moved into place keeps its
    byte offsets, so an import need not parse it twice)."""
    derived = await run_in_threadpool(sidecars.build, parsed, uids, services.settings.bulkdata_threshold)
    await sidecars.write(services, key, derived)
    record = build_record(parsed, uids, key, uuid.uuid4().hex, derived.attributes)
    return await index_instance(services, record)
