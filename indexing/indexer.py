"""Turning a stored instance file into its sidecars, index record and change-feed entry.

One code path for every way an instance arrives: STOW (after its file is stored), the
blob-created event, and repair. Each step is idempotent, so running it again after a
crash or for a repeated event finishes what was left undone and duplicates nothing:

1. sidecars (metadata JSON, frame index) are rewritten from the file;
2. ``IndexStore.add_instance`` is a no-op for a known ``instance_key`` (the existing
   record, and so its incarnation, is kept);
3. ``ChangeFeedStore.append`` is a no-op for a known ``entry_id``
   (``{instance_key}:{incarnation}:create``).
"""

from __future__ import annotations

import json
import logging
import uuid
from dataclasses import dataclass

from starlette.concurrency import run_in_threadpool

from changefeed.port import Action, ChangeEntry
from changefeed.sqlite_store import utc_now
from dicomweb.dicom.instance import ParsedInstance, read_instance
from dicomweb.dicom.json import to_dicom_json
from dicomweb.services import Services
from dicomweb.storage import layout
from indexing.port import InstanceRecord
from indexing.validation import InstanceUids, validate_instance

ROOT_TOKEN = "{{service-root}}"
"""Stands for the service root in stored metadata; replaced per request, since the root
a client sees (host, port, proxy) is known only then."""

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Sidecars:
    metadata: bytes
    frames: bytes
    attributes: dict


def build_sidecars(parsed: ParsedInstance, uids: InstanceUids, bulkdata_threshold: int) -> Sidecars:
    """Metadata (DICOM JSON, BulkDataURIs under :data:`ROOT_TOKEN`) and the frame index."""
    base = f"{ROOT_TOKEN}/studies/{uids.study}/series/{uids.series}/instances/{uids.sop}/bulkdata/"
    attributes = to_dicom_json(
        parsed.dataset, lambda path: base + path, bulkdata_threshold, pixel_data=parsed.frames
    )
    return Sidecars(
        metadata=json.dumps(attributes, separators=(",", ":")).encode(),
        frames=json.dumps(parsed.frames.to_json(), separators=(",", ":")).encode(),
        attributes=attributes,
    )


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


async def write_sidecars(services: Services, key: str, sidecars: Sidecars) -> None:
    await services.blobs.put_bytes(layout.metadata_name(key), sidecars.metadata)
    await services.blobs.put_bytes(layout.frames_name(key), sidecars.frames)


async def index_instance(services: Services, record: InstanceRecord) -> ChangeEntry:
    """Index the record (if new) and append its create entry (if new); publish it."""
    if not await services.index.add_instance(record):
        existing = await services.index.get_instance_by_key(record.instance_key)
        record = existing or record
    entry = await services.feed.append(
        ChangeEntry(
            entry_id=f"{record.instance_key}:{record.incarnation}:{Action.CREATE.value}",
            action=Action.CREATE,
            study_uid=record.study_uid,
            series_uid=record.series_uid,
            sop_uid=record.sop_uid,
            sop_class_uid=record.sop_class_uid,
            instance_key=record.instance_key,
            incarnation=record.incarnation,
        )
    )
    services.publisher.kick()  # events go out in the background; the feed already holds the entry
    return entry


async def index_stored_file(services: Services, key: str) -> ChangeEntry:
    """Index an instance whose file is already in the store (event and repair path).

    Reads only the file's header and pixel-data item headers.
    """

    def parse() -> ParsedInstance:
        with services.blobs.open_reader(layout.file_name(key)) as reader:
            return read_instance(reader)

    parsed = await run_in_threadpool(parse)
    uids = validate_instance(parsed.dataset)
    sidecars = await run_in_threadpool(build_sidecars, parsed, uids, services.settings.bulkdata_threshold)
    await write_sidecars(services, key, sidecars)
    record = build_record(parsed, uids, key, uuid.uuid4().hex, sidecars.attributes)
    return await index_instance(services, record)
