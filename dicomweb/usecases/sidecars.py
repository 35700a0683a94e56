"""What parsing an instance file derives (its metadata and frame index), and the sidecar
files that keep it beside the instance file on Blob Storage.

:func:`derive` makes the derived data of every store. :class:`SidecarFiles` is the
:class:`~dicomweb.usecases.derived_store.DerivedStore` of Blob Storage with Cosmos DB: two
files beside each instance file, a cache of what parsing the file gives. STOW makes only
the instance file and the index durable before answering; sidecars are written without
fsync and rebuilt from the file whenever one is missing or unreadable (after a crash, or if
someone removed them), so a reader never depends on them surviving. The embedded store
writes none (:mod:`dicomweb.usecases.derived_in_index`), but reads those an older version
wrote.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from functools import cached_property
from typing import Any, cast

from dicomcore import layout
from dicomcore.dicomjson import to_dicom_json
from dicomcore.instance import ParsedInstance, read_instance
from dicomcore.threads import in_thread
from dicomcore.validation import InstanceUids, validate_instance
from dicomweb.storage.port import BlobNotFoundError, BlobStore, BlockingBlobWrites
from indexing.port import BlockingIndexWrites, IndexStore, InstanceRecord

ROOT_TOKEN = "{{service-root}}"
"""Stands for the service root in stored metadata; replaced per request, since the root
a client sees (host, port, proxy) is known only then."""


@dataclass(frozen=True)
class Derived:
    """What parsing an instance file gives: its header as DICOM JSON and its frame index."""

    attributes: dict[str, Any]
    """The metadata: the header as DICOM JSON, BulkDataURIs under :data:`ROOT_TOKEN`."""
    frames: str
    """The frame index as JSON text (:meth:`dicomcore.frames.FrameIndex.to_json`)."""

    @cached_property
    def metadata(self) -> bytes:
        """The metadata sidecar's bytes; serialized only where sidecars are written (the
        embedded store keeps the attributes in its index record instead)."""
        return json.dumps(self.attributes, separators=(",", ":")).encode()


def derive(parsed: ParsedInstance, uids: InstanceUids, bulkdata_threshold: int) -> Derived:
    """Metadata (BulkDataURIs under :data:`ROOT_TOKEN`) and the frame index of a parsed file."""
    base = f"{ROOT_TOKEN}/studies/{uids.study}/series/{uids.series}/instances/{uids.sop}/bulkdata/"
    attributes = to_dicom_json(parsed.dataset, lambda path: base + path, bulkdata_threshold, pixel_data=parsed.frames)
    return Derived(attributes=attributes, frames=json.dumps(parsed.frames.to_json(), separators=(",", ":")))


def _whole_json_object(raw: bytes) -> bool:
    # A sidecar cut short by a crash is empty or lacks its closing brace.
    stripped = raw.strip()
    return stripped.startswith(b"{") and stripped.endswith(b"}")


async def parse_stored(blobs: BlobStore, key: str) -> tuple[ParsedInstance, InstanceUids]:
    """Parse a stored instance file (header and item headers only) and validate it."""

    def parse() -> ParsedInstance:
        with blobs.open_reader(layout.file_name(key)) as reader:
            return read_instance(reader)

    parsed = await in_thread(parse)
    return parsed, validate_instance(parsed.dataset)


class SidecarFiles:
    """Reading and writing the sidecars of stored instances in ``blobs``; records are
    added to ``index`` as they are (the sidecars are written after the commit)."""

    def __init__(self, blobs: BlobStore, index: IndexStore, bulkdata_threshold: int) -> None:
        self.blobs = blobs
        self.index = index
        self.bulkdata_threshold = bulkdata_threshold

    async def add_instance(self, record: InstanceRecord, derived: Derived, *, fresh: bool = True) -> bool:
        return await self.index.add_instance(record, fresh=fresh)

    def add_instance_blocking(self, record: InstanceRecord, derived: Derived, *, fresh: bool = True) -> bool:
        # Called only on the one-trip STOW path, which StoreInstance takes with a local index.
        return cast(BlockingIndexWrites, self.index).add_instance_blocking(record, fresh=fresh)

    async def add_instances(self, records: list[InstanceRecord], derived: list[Derived]) -> list[bool]:
        return await self.index.add_instances(records)

    async def write(self, key: str, derived: Derived) -> None:
        # Side by side: two worker threads locally, two uploads in flight on Blob Storage.
        await asyncio.gather(self.blobs.put_bytes(layout.metadata_name(key), derived.metadata, durable=False),
                             self.blobs.put_bytes(layout.frames_name(key), derived.frames.encode(), durable=False))

    @staticmethod
    def write_blocking(blobs: BlockingBlobWrites, key: str, derived: Derived) -> None:
        """:meth:`write` in the calling thread, through the store's blocking writes (the
        one-trip STOW path of :class:`~dicomweb.usecases.store_instance.StoreInstance`)."""
        blobs.put_bytes_blocking(layout.metadata_name(key), derived.metadata, durable=False)
        blobs.put_bytes_blocking(layout.frames_name(key), derived.frames.encode(), durable=False)

    async def parse_stored(self, key: str) -> tuple[ParsedInstance, InstanceUids]:
        return await parse_stored(self.blobs, key)

    async def rebuild(self, key: str) -> Derived:
        """Write the sidecars of a stored instance file again."""
        parsed, uids = await self.parse_stored(key)
        derived = await in_thread(derive, parsed, uids, self.bulkdata_threshold)
        await self.write(key, derived)
        return derived

    async def read_metadata(self, key: str) -> bytes:
        """The stored metadata JSON, rebuilt from the instance file if it is missing or cut
        short. Raises :class:`BlobNotFoundError` when the instance file itself is gone."""
        try:
            raw = await self.blobs.get_bytes(layout.metadata_name(key))
            if _whole_json_object(raw):
                return raw
        except BlobNotFoundError:
            pass
        return (await self.rebuild(key)).metadata

    async def read_metadata_many(self, keys: list[str]) -> list[bytes]:
        """:meth:`read_metadata` for many instances, read in one batch."""
        found = await self.blobs.get_many([layout.metadata_name(key) for key in keys])
        return [raw if raw is not None and _whole_json_object(raw) else await self.read_metadata(key)
                for key, raw in zip(keys, found, strict=True)]

    async def read_frames(self, key: str) -> dict[str, Any]:
        """The frame index as JSON, rebuilt from the instance file if missing or unreadable."""
        try:
            frames: dict[str, Any] = json.loads(await self.blobs.get_bytes(layout.frames_name(key)))
            return frames
        except (BlobNotFoundError, ValueError):
            rebuilt: dict[str, Any] = json.loads((await self.rebuild(key)).frames)
            return rebuilt
