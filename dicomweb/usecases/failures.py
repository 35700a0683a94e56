"""Dropped files that cannot be imported: moved to ``failed/`` with a note saying why.

A file that fails validation, or duplicates an instance already stored, must be neither
lost nor retried forever. It is moved out of the drop zone to ``failed/{its name under
incoming/}`` and a JSON note beside it (``{name}.failure.json``) gives the reason and the
time, for an operator to read (``GET /v1/operations/ingest-failures``), fix the file and
drop it again.
"""

from __future__ import annotations

import hashlib
import json
import logging
import uuid
from typing import Any

from dicomcore import layout
from dicomcore.clock import utc_now
from dicomcore.validation import InstanceUids
from dicomweb.storage.port import BlobExistsError, BlobNotFoundError, BlobStore
from indexing.port import IndexStore

NOTE_SUFFIX = ".failure.json"
MAX_NAME_BYTES = 180
"""Longest last segment of a name in ``failed/``: a folder entry holds 255 bytes, and the
note adds its suffix and a clash its 9-byte tag."""

log = logging.getLogger(__name__)


async def quarantine(blobs: BlobStore, name: str, reason: str, uids: InstanceUids | None = None) -> str | None:
    """Move the dropped file ``name`` to ``failed/`` and write its note beside it.

    Returns the new name, or ``None`` when the file is already gone (another delivery of
    the same event handled it).
    """
    relative = _shortened(name.removeprefix(layout.INCOMING_PREFIX))
    target = await _move_aside(blobs, name, layout.FAILED_PREFIX + relative)
    if target is None:
        return None
    note: dict[str, Any] = {"blob": target, "source": name, "reason": reason, "failedAt": utc_now()}
    if uids is not None:
        note |= {"studyInstanceUid": uids.study, "seriesInstanceUid": uids.series, "sopInstanceUid": uids.sop}
    await blobs.put_bytes(target + NOTE_SUFFIX, json.dumps(note, indent=2).encode())
    # The reason stays in the note: it may quote attribute values, which logs never hold.
    # Names are user-chosen: %a escapes control characters and undecodable bytes.
    log.warning("dropped file %a not imported; moved to %a (the reason is in its note)", name, target)
    return target


def _shortened(relative: str) -> str:
    """``relative`` with its last segment cut to :data:`MAX_NAME_BYTES` (UTF-8, undecodable
    bytes kept as they came), a hash of the whole keeping cut names apart."""
    folder, _, last = relative.rpartition("/")
    encoded = last.encode("utf-8", "surrogateescape")
    if len(encoded) <= MAX_NAME_BYTES:
        return relative
    digest = hashlib.sha256(encoded).hexdigest()[:16]
    head = encoded[: MAX_NAME_BYTES - 17].decode("utf-8", "ignore")
    return f"{folder}/{head}~{digest}" if folder else f"{head}~{digest}"


async def _move_aside(blobs: BlobStore, name: str, target: str) -> str | None:
    try:
        await blobs.move(name, target)
        return target
    except BlobNotFoundError:
        return None
    except BlobExistsError:
        pass  # an earlier file of the same name failed too: keep both
    unique = f"{target}.{uuid.uuid4().hex[:8]}"
    try:
        await blobs.move(name, unique)
        return unique
    except BlobNotFoundError:
        return None


async def list_failures(blobs: BlobStore, index: IndexStore, limit: int, offset: int = 0) -> list[dict[str, Any]]:
    """Up to ``limit`` files in ``failed/``, by name, each with its note, after skipping
    ``offset`` of them. A failure whose instance was stored after it failed (the file was
    fixed and imported again) is no longer listed."""
    failures: list[dict[str, Any]] = []
    skipped = 0
    async for name in blobs.list_names(layout.FAILED_PREFIX):
        if name.endswith(NOTE_SUFFIX):
            continue
        note = await _read_note(blobs, name)
        if await _imported_since(index, note):
            continue
        if skipped < offset:
            skipped += 1
            continue
        failures.append(note)
        if len(failures) >= limit:
            break
    return failures


async def _imported_since(index: IndexStore, note: dict[str, Any]) -> bool:
    uids = (note.get("studyInstanceUid"), note.get("seriesInstanceUid"), note.get("sopInstanceUid"))
    if not all(isinstance(uid, str) for uid in uids):
        return False
    record = await index.get_instance(*uids)  # type: ignore[arg-type]
    return record is not None and record.stored_at > str(note.get("failedAt") or "")


async def delete_failure(blobs: BlobStore, name: str) -> bool:
    """Remove a failed file and its note; ``False`` when there is no such failure."""
    blob = layout.FAILED_PREFIX + name
    if name.endswith(NOTE_SUFFIX) or ".." in name.split("/"):
        return False
    try:
        await blobs.size(blob)
    except BlobNotFoundError:
        return False
    await blobs.delete(blob + NOTE_SUFFIX)
    await blobs.delete(blob)
    return True


async def _read_note(blobs: BlobStore, name: str) -> dict[str, Any]:
    try:
        note = json.loads(await blobs.get_bytes(name + NOTE_SUFFIX))
    except (BlobNotFoundError, ValueError):
        # Moved aside, then stopped before the note was written.
        note = {"reason": "unknown (no note was written)"}
    return {**note, "blob": name}
