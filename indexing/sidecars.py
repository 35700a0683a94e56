"""The files kept beside an instance file: its metadata (DICOM JSON) and its frame index.

They are a cache of what parsing the file gives. STOW makes only the instance file and the
index durable before answering; sidecars are written without fsync and rebuilt from the
file whenever one is missing or unreadable (after a crash, or if someone removed them), so
a reader never depends on them surviving.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from starlette.concurrency import run_in_threadpool

from dicomweb.dicom.instance import ParsedInstance, read_instance
from dicomweb.dicom.json import to_dicom_json
from dicomweb.services import Services
from dicomweb.storage import layout
from dicomweb.storage.port import BlobNotFoundError
from indexing.validation import InstanceUids, validate_instance

ROOT_TOKEN = "{{service-root}}"
"""Stands for the service root in stored metadata; replaced per request, since the root
a client sees (host, port, proxy) is known only then."""


@dataclass(frozen=True)
class Sidecars:
    metadata: bytes
    frames: bytes
    attributes: dict


def build(parsed: ParsedInstance, uids: InstanceUids, bulkdata_threshold: int) -> Sidecars:
    """Metadata (BulkDataURIs under :data:`ROOT_TOKEN`) and the frame index of a parsed file."""
    base = f"{ROOT_TOKEN}/studies/{uids.study}/series/{uids.series}/instances/{uids.sop}/bulkdata/"
    attributes = to_dicom_json(parsed.dataset, lambda path: base + path, bulkdata_threshold, pixel_data=parsed.frames)
    return Sidecars(
        metadata=json.dumps(attributes, separators=(",", ":")).encode(),
        frames=json.dumps(parsed.frames.to_json(), separators=(",", ":")).encode(),
        attributes=attributes,
    )


async def write(services: Services, key: str, sidecars: Sidecars) -> None:
    await services.blobs.put_bytes(layout.metadata_name(key), sidecars.metadata, durable=False)
    await services.blobs.put_bytes(layout.frames_name(key), sidecars.frames, durable=False)


async def parse_stored(services: Services, key: str) -> tuple[ParsedInstance, InstanceUids]:
    """Parse a stored instance file (header and item headers only) and validate it."""

    def parse() -> ParsedInstance:
        with services.blobs.open_reader(layout.file_name(key)) as reader:
            return read_instance(reader)

    parsed = await run_in_threadpool(parse)
    return parsed, validate_instance(parsed.dataset)


async def rebuild(services: Services, key: str) -> Sidecars:
    """Write the sidecars of a stored instance file again."""
    parsed, uids = await parse_stored(services, key)
    sidecars = await run_in_threadpool(build, parsed, uids, services.settings.bulkdata_threshold)
    await write(services, key, sidecars)
    return sidecars


def _whole_json_object(raw: bytes) -> bool:
    # A sidecar cut short by a crash is empty or lacks its closing brace.
    stripped = raw.strip()
    return stripped.startswith(b"{") and stripped.endswith(b"}")


async def read_metadata(services: Services, key: str) -> bytes:
    """The stored metadata JSON, rebuilt from the instance file if it is missing or cut short.
    Raises :class:`BlobNotFoundError` when the instance file itself is gone."""
    try:
        raw = await services.blobs.get_bytes(layout.metadata_name(key))
        if _whole_json_object(raw):
            return raw
    except BlobNotFoundError:
        pass
    return (await rebuild(services, key)).metadata


async def read_metadata_many(services: Services, keys: list[str]) -> list[bytes]:
    """:func:`read_metadata` for many instances, read in one batch."""
    found = await services.blobs.get_many([layout.metadata_name(key) for key in keys])
    return [raw if raw is not None and _whole_json_object(raw) else await read_metadata(services, key)
            for key, raw in zip(keys, found, strict=True)]


async def read_frames(services: Services, key: str) -> dict:
    """The frame index as JSON, rebuilt from the instance file if missing or unreadable."""
    try:
        return json.loads(await services.blobs.get_bytes(layout.frames_name(key)))
    except (BlobNotFoundError, ValueError):
        return json.loads((await rebuild(services, key)).frames)
