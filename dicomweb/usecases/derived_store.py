"""The derived store port: where what is derived from each stored instance file lives.

Parsing an instance file gives its metadata (the header as DICOM JSON, BulkDataURIs under
the service-root placeholder) and its frame index (where each frame's bytes lie). Readers
(WADO metadata, frames, rendered, bulk data; QIDO includefield; the change feed's
``includemetadata``; DICOMcast) ask this port for them, and the store use case hands it
each new instance, so neither cares where the data is kept. Two adapters
(docs/architecture.md, "Derived data: where it lives"):

- :class:`~dicomweb.usecases.sidecars.SidecarFiles`: two files beside the instance file
  (Blob Storage with Cosmos DB), written after the record commits, a cache rebuilt from the
  file when missing;
- :class:`~dicomweb.usecases.derived_in_index.DerivedInIndexStore`: nothing beside the file
  (a folder with SQLite): the metadata is the record's header, the frame index is committed
  in the record's own transaction.
"""

from __future__ import annotations

from typing import Any, Protocol

from dicomcore.instance import ParsedInstance
from dicomcore.validation import InstanceUids
from dicomweb.storage.port import BlockingBlobWrites
from dicomweb.usecases.sidecars import Derived
from indexing.port import InstanceRecord


class DerivedStore(Protocol):
    """Adds records with their derived data, and reads the derived data back."""

    bulkdata_threshold: int
    """Values longer than this (bytes) become BulkDataURIs in the metadata."""

    async def add_instance(self, record: InstanceRecord, derived: Derived, *, fresh: bool = True) -> bool:
        """Commit ``record`` (:meth:`indexing.port.IndexStore.add_instance`, same contract),
        with whatever of ``derived`` this store keeps in the same commit."""
        ...

    def add_instance_blocking(self, record: InstanceRecord, derived: Derived, *, fresh: bool = True) -> bool:
        """:meth:`add_instance` in the calling thread (the index is local: SQLite)."""
        ...

    async def add_instances(self, records: list[InstanceRecord], derived: list[Derived]) -> list[bool]:
        """:meth:`add_instance` (fresh) for each record (:meth:`indexing.port.IndexStore.add_instances`)."""
        ...

    async def write(self, key: str, derived: Derived) -> None:
        """After the commit: keep what the commit did not (sidecar files). A failure here
        fails nothing: readers rebuild what is missing from the file."""
        ...

    def write_blocking(self, blobs: BlockingBlobWrites, key: str, derived: Derived) -> None:
        """:meth:`write` in the calling thread, through the blob store's blocking writes."""
        ...

    async def parse_stored(self, key: str) -> tuple[ParsedInstance, InstanceUids]:
        """Parse a stored instance file (header and item headers only) and validate it."""
        ...

    async def read_metadata(self, key: str) -> bytes:
        """The instance's metadata JSON (BulkDataURIs under ``ROOT_TOKEN``). Raises
        :class:`~dicomweb.storage.port.BlobNotFoundError` when the instance is gone."""
        ...

    async def read_metadata_many(self, keys: list[str]) -> list[bytes]:
        """:meth:`read_metadata` for many instances, in one batch, in ``keys`` order."""
        ...

    async def read_frames(self, key: str) -> dict[str, Any]:
        """The frame index as JSON (:meth:`dicomcore.frames.FrameIndex.to_json`). Raises
        :class:`~dicomweb.storage.port.BlobNotFoundError` when the instance is gone."""
        ...
