"""The operation store port: the state of long-running operations, kept beside the index.

An operation (a bulk import, a reindex) is started by a request and runs for minutes or
hours; its state must outlive the process that runs it (a restart, a redeployment, a
``kill -9``), so it lives in the index's database: the ``operation`` table of
``index.sqlite`` (:mod:`indexing.sqlite.operation_store`) or the ``operations`` Cosmos
container (:mod:`indexing.cosmos.operation_store`). Every adapter passes the same contract
tests (``tests/contract/test_operation_store_contract.py``).

The runner writes the state (:meth:`OperationStore.save`); a user asks to cancel
(:meth:`OperationStore.request_cancel`). The cancel request is kept apart from the state
so that a runner saving its progress can never wipe it out.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any, Protocol


class Status(StrEnum):
    """The managed DICOM service's operation statuses (camelCase on the wire)."""

    NOT_STARTED = "notStarted"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELED = "canceled"

    @property
    def terminal(self) -> bool:
        return self in (Status.SUCCEEDED, Status.FAILED, Status.CANCELED)


@dataclass(frozen=True)
class OperationState:
    """One operation as stored. ``checkpoint`` is where its runner resumes after a restart."""

    operation_id: str
    type: str
    status: Status
    created_time: str
    last_updated_time: str
    input: dict[str, Any] = field(default_factory=dict)
    """What the operation was started with (e.g. the import prefix)."""
    percent_complete: int = 0
    resources: list[str] = field(default_factory=list)
    results: dict[str, Any] = field(default_factory=dict)
    checkpoint: dict[str, Any] | None = None
    """The orchestrator's input to resume from (``None``: start from ``input``)."""
    error: str = ""
    """Why a failed operation failed (no patient data)."""

    def with_(self, **changes: Any) -> OperationState:
        return replace(self, **changes)

    def to_json(self) -> dict[str, Any]:
        return {
            "operationId": self.operation_id, "type": self.type, "status": self.status.value,
            "createdTime": self.created_time, "lastUpdatedTime": self.last_updated_time, "input": self.input,
            "percentComplete": self.percent_complete, "resources": self.resources, "results": self.results,
            "checkpoint": self.checkpoint, "error": self.error,
        }

    @classmethod
    def from_json(cls, body: dict[str, Any]) -> OperationState:
        return cls(
            operation_id=body["operationId"], type=body["type"], status=Status(body["status"]),
            created_time=body["createdTime"], last_updated_time=body["lastUpdatedTime"], input=body.get("input") or {},
            percent_complete=int(body.get("percentComplete") or 0), resources=list(body.get("resources") or []),
            results=dict(body.get("results") or {}), checkpoint=body.get("checkpoint"), error=body.get("error") or "",
        )


class OperationStore(Protocol):
    """Operations by id. All methods are safe to call concurrently."""

    async def create(self, state: OperationState) -> None:
        """Store a new operation. Raises :class:`FileExistsError` when the id is taken."""
        ...

    async def get(self, operation_id: str) -> OperationState | None:
        ...

    async def save(self, state: OperationState) -> None:
        """Replace the operation's state (never its cancel request)."""
        ...

    async def recent(self, *, status: Status | None = None, type: str | None = None,
                   limit: int = 100, offset: int = 0) -> list[OperationState]:
        """Newest first (by ``createdTime``, then id)."""
        ...

    async def unfinished(self) -> list[OperationState]:
        """Operations not yet in a terminal status, oldest first (to resume at start-up)."""
        ...

    async def request_cancel(self, operation_id: str) -> None:
        """Ask the runner to stop the operation after its current batch."""
        ...

    async def cancel_requested(self, operation_id: str) -> bool:
        ...

    async def close(self) -> None:
        ...
