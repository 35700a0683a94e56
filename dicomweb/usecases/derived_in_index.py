"""The embedded store's :class:`~dicomweb.usecases.derived_store.DerivedStore`: the index
holds the derived data, no file is written beside an instance.

SQLite already keeps each instance's header as DICOM JSON in its record (the series
metadata route serves it from there), so a metadata file duplicated it; the frame index is
committed in the transaction that inserts the record (``indexing.port.FrameIndexHolder``),
so file, record, frame index and feed entry agree after a crash at any moment. STOW and
import thereby write one file per instance instead of three (docs/performance.md).

Instances indexed before frame indexes were kept in the index have sidecar files: their
frame index is read from the sidecar, or, if it is gone, from the instance file (parsed,
nothing written). Their metadata is in their record like any other's.
"""

from __future__ import annotations

import json
from typing import Any

from dicomcore import layout
from dicomcore.instance import ParsedInstance
from dicomcore.validation import InstanceUids
from dicomweb.storage.port import BlobNotFoundError, BlobStore, BlockingBlobWrites
from dicomweb.usecases.sidecars import Derived, parse_stored
from indexing.port import FrameIndexHolder, InstanceRecord


class DerivedInIndexStore:
    """Derived data in ``index`` (SQLite); ``blobs`` holds the instance files."""

    def __init__(self, blobs: BlobStore, index: FrameIndexHolder, bulkdata_threshold: int) -> None:
        self.blobs = blobs
        self.index = index
        self.bulkdata_threshold = bulkdata_threshold

    async def add_instance(self, record: InstanceRecord, derived: Derived, *, fresh: bool = True) -> bool:
        return await self.index.add_instance(record, fresh=fresh, frames=derived.frames)

    def add_instance_blocking(self, record: InstanceRecord, derived: Derived, *, fresh: bool = True) -> bool:
        return self.index.add_instance_blocking(record, fresh=fresh, frames=derived.frames)

    async def add_instances(self, records: list[InstanceRecord], derived: list[Derived]) -> list[bool]:
        return await self.index.add_instances(records, [each.frames for each in derived])

    async def write(self, key: str, derived: Derived) -> None:
        """Nothing: the commit kept it all."""

    def write_blocking(self, blobs: BlockingBlobWrites, key: str, derived: Derived) -> None:
        """Nothing: the commit kept it all."""

    async def parse_stored(self, key: str) -> tuple[ParsedInstance, InstanceUids]:
        return await parse_stored(self.blobs, key)

    async def read_metadata(self, key: str) -> bytes:
        return (await self.read_metadata_many([key]))[0]

    async def read_metadata_many(self, keys: list[str]) -> list[bytes]:
        headers = await self.index.headers_by_key(keys)
        missing = next((key for key, header in zip(keys, headers, strict=True) if header is None), None)
        if missing is not None:  # deleted: what a sidecar store says when the file is gone
            raise BlobNotFoundError(layout.file_name(missing))
        return [header.encode() for header in headers if header is not None]

    async def read_frames(self, key: str) -> dict[str, Any]:
        held = await self.index.frame_index(key)
        if held is None:
            return await self._frames_of_older_instance(key)
        frames: dict[str, Any] = json.loads(held)
        return frames

    async def _frames_of_older_instance(self, key: str) -> dict[str, Any]:
        """The frame index of an instance indexed before the index held them: its sidecar,
        else (gone, or cut short by a crash) parsed from its file, writing nothing. Raises
        :class:`BlobNotFoundError` when the file is gone too."""
        try:
            frames: dict[str, Any] = json.loads(await self.blobs.get_bytes(layout.frames_name(key)))
            return frames
        except (BlobNotFoundError, ValueError):
            pass
        parsed, _ = await self.parse_stored(key)
        return parsed.frames.to_json()
