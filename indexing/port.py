"""The index store port: what QIDO, WADO and delete need from an index.

An :class:`InstanceRecord` is a projection of a stored file; the blob is the source of
truth. Adapters: :mod:`indexing.sqlite.index_store` (embedded) and a Cosmos DB store (cloud).
Every adapter passes the same contract tests (``tests/contract``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

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


@dataclass(frozen=True)
class StoreCounts:
    """How much the index holds (the landing page and ``GET /v1`` show it)."""

    studies: int
    series: int
    instances: int


class IndexStore(Protocol):
    """The searchable index of instances, studies and series."""

    async def add_instance(self, record: InstanceRecord) -> bool:
        """Index an instance and update its study and series summaries.

        Returns ``False`` (and changes nothing) when an instance with the same
        ``instance_key`` is already indexed: the indexer relies on this to be idempotent.
        """
        ...

    async def get_instance(self, study_uid: str, series_uid: str, sop_uid: str) -> InstanceRecord | None:
        ...

    async def get_instance_by_key(self, instance_key: str) -> InstanceRecord | None:
        ...

    async def list_instances(
        self, study_uid: str, series_uid: str | None = None, sop_uid: str | None = None
    ) -> list[InstanceRecord]:
        """Instances of a study, series or one instance, in (series, instance number, SOP UID) order."""
        ...

    async def remove_instances(
        self, study_uid: str, series_uid: str | None = None, sop_uid: str | None = None
    ) -> list[InstanceRecord]:
        """Remove from the index; return what was removed (summaries are kept right)."""
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
