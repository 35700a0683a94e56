"""The index store port: what QIDO, WADO and delete need from an index.

An :class:`InstanceRecord` is a projection of a stored file; the blob is the source of
truth. Adapters: :mod:`indexing.sqlite.index_store` (embedded) and a Cosmos DB store (cloud).
Every adapter passes the same contract tests (``tests/contract``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from indexing.query import Query

DicomJson = dict[str, Any]
"""A dataset in the DICOM JSON model (PS3.18 F.2): ``{"0020000D": {"vr": "UI", "Value": [...]}}``."""


@dataclass
class InstanceRecord:
    """One stored instance, as the index knows it."""

    study_uid: str
    series_uid: str
    sop_uid: str
    sop_class_uid: str
    instance_key: str
    """Folder of the instance's blobs (see :mod:`dicomcore.layout`)."""
    incarnation: str
    """Unique id of this stored copy; a deleted and re-stored instance gets a new one."""
    transfer_syntax_uid: str
    number_of_frames: int
    size: int
    """Bytes in the stored file."""
    attributes: DicomJson = field(default_factory=dict)
    """Header attributes (no bulk data): the source of every indexed and returned value."""
    stored_at: str = ""
    """ISO 8601 UTC time the instance was indexed."""
    sha256: str = ""
    """SHA-256 of the stored file (hex), computed while the upload was spooled; empty for
    a file the server never read whole (a drop-zone import), until ``verify`` fills it in."""


@dataclass(frozen=True)
class InstanceHeader:
    """An instance's header as serialized JSON text, for WADO metadata: what the index
    keeps of it, never parsed on the way out."""

    instance_key: str
    incarnation: str
    json: str
    """The DICOM JSON object the record's attributes hold, less what indexing added to it
    (:data:`indexing.records.ADDED_TO_HEADER`): the metadata of the instance, its
    BulkDataURIs under the service-root placeholder, as STOW derived it."""


@dataclass(frozen=True)
class StoreCounts:
    """How much the index holds (the landing page and ``GET /v1`` show it)."""

    studies: int
    series: int
    instances: int


class IndexStore(Protocol):
    """The searchable index of instances, studies and series."""

    async def add_instance(self, record: InstanceRecord, *, fresh: bool = True) -> bool:
        """Index an instance, update its study and series summaries and commit its
        create entry to the change feed, as one unit (see docs/architecture.md).

        Returns ``False`` (and changes nothing) when an instance with the same
        ``instance_key`` is already indexed: the indexer relies on this to be idempotent.
        ``fresh``: the file was just placed (STOW, import), which ends any earlier delete
        of the instance (its tombstone goes). Not fresh (a file found already stored: a
        blob event, repair): refused, ``False``, while the instance is tombstoned, so no
        late event or repair brings a deleted instance back.
        """
        ...

    async def add_instances(self, records: list[InstanceRecord]) -> list[bool]:
        """:meth:`add_instance` (``fresh``) for each record, in one commit where the store
        can (SQLite: a failure then indexes none of them), else one by one (Cosmos: a
        failure leaves the earlier ones indexed). For bulk import
        (``dicomweb/usecases/store_batch.py``). Per record, what :meth:`add_instance` returns."""
        ...

    async def get_instance(self, study_uid: str, series_uid: str, sop_uid: str) -> InstanceRecord | None:
        ...

    async def get_instance_by_key(self, instance_key: str) -> InstanceRecord | None:
        ...

    async def list_instances(
        self, study_uid: str, series_uid: str | None = None, sop_uid: str | None = None, *,
        attributes: bool = True,
    ) -> list[InstanceRecord]:
        """Instances of a study, series or one instance, in (series, instance number, SOP UID) order.

        ``attributes=False``: the records' ``attributes`` are left empty, which spares parsing
        every header (a study retrieve needs the files, not the headers)."""
        ...

    async def list_headers(
        self, study_uid: str, series_uid: str | None = None, sop_uid: str | None = None
    ) -> list[InstanceHeader]:
        """The headers of the instances :meth:`list_instances` lists, in its order, as JSON
        text: a series' metadata is a thousand records, and handing their stored JSON over
        as it is costs no parse and no serialization."""
        ...

    async def remove_instances(
        self, study_uid: str, series_uid: str | None = None, sop_uid: str | None = None, *, owner: str = ""
    ) -> list[InstanceRecord]:
        """Remove from the index; return what was removed (summaries are kept right).

        With the records, as one unit: each instance's delete entry is committed to the
        feed and a pending tombstone is left, claimed by ``owner``, until
        :meth:`finish_delete` says its files are gone.
        """
        ...

    async def pending_deletes(
        self, study_uid: str | None = None, series_uid: str | None = None, sop_uid: str | None = None
    ) -> list[InstanceRecord]:
        """Instances removed from the index whose files may still exist (pending tombstones)."""
        ...

    async def claim_delete(self, record: InstanceRecord, owner: str, lease_seconds: float) -> bool:
        """Take (or renew) the right to remove a pending delete's files (``record`` is one
        :meth:`pending_deletes` returned): ``True`` when its tombstone is pending and either
        ``owner`` holds it or its last claim is older than ``lease_seconds`` (its deleter
        died). The record's UIDs let a store partitioned by study find the tombstone
        within its study."""
        ...

    async def finish_delete(self, record: InstanceRecord) -> None:
        """The instance's files are gone: its tombstone is kept, done, so that a late
        blob event or repair still finds the instance deleted."""
        ...

    async def is_deleted(self, instance_key: str) -> bool:
        """A tombstone (pending or done) exists for the instance."""
        ...

    async def records_after(self, instance_key: str, limit: int) -> list[InstanceRecord]:
        """Every record, in ``instance_key`` order, after ``instance_key`` (paging for verify)."""
        ...

    async def set_digest(self, instance_key: str, sha256: str) -> None:
        """Record the stored file's SHA-256 (verify fills in what an import left empty)."""
        ...

    async def reconcile_entries(self, *, repair: bool) -> int:
        """Count (and with ``repair``, append) the feed entries that records and tombstones
        call for but the feed lacks: what a crash between the index write and the feed
        append leaves where the two cannot commit together (Cosmos DB)."""
        ...

    async def search(self, query: Query) -> list[DicomJson]:
        """QIDO: matching studies, series or instances as DICOM JSON, computed attributes
        included, every attribute of the level present (the caller applies includefield)."""
        ...

    async def counts(self) -> StoreCounts:
        """Studies, series and instances indexed; also how readiness checks the index answers."""
        ...

    async def close(self) -> None:
        ...


@runtime_checkable
class BlockingIndexWrites(Protocol):
    """An index on this machine (SQLite) can also add from the calling thread, so the store
    use case commits a record in the same worker-thread trip as its file
    (:class:`dicomweb.storage.port.BlockingBlobWrites`). Same contract as
    :meth:`IndexStore.add_instance`; blocking."""

    def add_instance_blocking(self, record: InstanceRecord, *, fresh: bool = True) -> bool:
        ...


class FrameIndexHolder(Protocol):
    """An index that keeps each instance's frame index with its record (SQLite), so the
    embedded store writes no file beside an instance (docs/architecture.md, "Derived data:
    where it lives"). The adds are :class:`IndexStore`'s and
    :class:`BlockingIndexWrites`' with the records' frame indexes (JSON text,
    :meth:`dicomcore.frames.FrameIndex.to_json`), committed in the records' transaction."""

    async def add_instance(self, record: InstanceRecord, *, fresh: bool = True, frames: str | None = None) -> bool:
        ...

    def add_instance_blocking(self, record: InstanceRecord, *, fresh: bool = True, frames: str | None = None) -> bool:
        ...

    async def add_instances(self, records: list[InstanceRecord], frames: list[str] | None = None) -> list[bool]:
        ...

    async def frame_index(self, instance_key: str) -> str | None:
        """The frame index committed with the instance's record; ``None`` when the instance
        is not indexed, or was indexed before frame indexes were kept (its sidecar file
        holds it then)."""
        ...

    async def headers_by_key(self, instance_keys: list[str]) -> list[str | None]:
        """The header JSON text of each instance (as :attr:`InstanceHeader.json`), in
        ``instance_keys`` order; ``None`` for an instance not indexed."""
        ...
