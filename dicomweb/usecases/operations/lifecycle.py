"""Starting and cancelling operations, and the bookkeeping both runners do around a job.

The runner-independent part of the framework: an operation is created ``notStarted`` in
the store and handed to an :class:`OperationStarter` (the local runner, or a queue message
that starts a Durable orchestration); the runner calls :meth:`Bookkeeping.begin`, then
:meth:`~Bookkeeping.progress` at each checkpoint and :meth:`~Bookkeeping.finish` at the end.
In Durable Functions these three run as activities (an orchestrator does no I/O).
"""

from __future__ import annotations

import uuid
from typing import Any, Protocol

from dicomcore.clock import utc_now
from dicomweb.usecases.operations.steps import OperationKind
from indexing.operation_store import OperationState, OperationStore, Status


class OperationStarter(Protocol):
    """Gets a created operation running (a runner, or a message to one)."""

    async def start(self, state: OperationState) -> None:
        ...


class OperationNotFound(LookupError):
    pass


class OperationFinished(RuntimeError):
    """The operation already ended: it cannot be cancelled."""


def new_operation_id() -> str:
    """A GUID as 32 hex digits (the managed service's operation ids)."""
    return uuid.uuid4().hex


async def start_operation(store: OperationStore, starter: OperationStarter, type: str,
                          input: dict[str, Any], operation_id: str | None = None,
                          resources: list[str] | None = None,
                          results: dict[str, Any] | None = None) -> OperationState:
    """Create and start an operation; ``operation_id`` when the caller had to record it first
    (a reindex names its operation in the tags before the operation can finish them);
    ``resources``: the URIs of what it works on (a reindex's tags), shown in its status;
    ``results``: its counts before any work (an import cancelled before its first page still
    answers ``imported: 0``, not an empty object)."""
    now = utc_now()
    state = OperationState(operation_id or new_operation_id(), type, Status.NOT_STARTED, now, now, input=input,
                           resources=list(resources or []), results=dict(results or {}))
    await store.create(state)
    await starter.start(state)
    return state


async def cancel_operation(store: OperationStore, operation_id: str) -> OperationState:
    """Ask a running operation to stop after its current batch."""
    state = await store.get(operation_id)
    if state is None:
        raise OperationNotFound(operation_id)
    if state.status.terminal:
        raise OperationFinished(f"operation {operation_id} already ended ({state.status.value})")
    await store.request_cancel(operation_id)
    return state


class Bookkeeping:
    """The state changes around a job, the same for every runner and operation type."""

    def __init__(self, store: OperationStore) -> None:
        self.store = store

    async def _state(self, operation_id: str) -> OperationState:
        state = await self.store.get(operation_id)
        if state is None:
            raise OperationNotFound(operation_id)
        return state

    async def begin(self, operation_id: str) -> dict[str, Any] | None:
        """Mark the operation running; the input to run from (its checkpoint, if it has
        one), or ``None`` when it must not run (already ended, or cancelled before starting)."""
        state = await self._state(operation_id)
        if state.status.terminal:
            return None
        if await self.store.cancel_requested(operation_id):
            await self.finish(operation_id, Status.CANCELED, state.results)
            return None
        if state.status is Status.NOT_STARTED:
            await self.store.save(state.with_(status=Status.RUNNING, last_updated_time=utc_now()))
        return state.checkpoint if state.checkpoint is not None else state.input

    async def progress(self, operation_id: str, percent: int, results: dict[str, Any],
                       checkpoint: dict[str, Any]) -> bool:
        """Record a checkpoint; ``True`` when the user asked to cancel."""
        state = await self._state(operation_id)
        await self.store.save(state.with_(status=Status.RUNNING, percent_complete=max(0, min(percent, 99)),
                                          results=results, checkpoint=checkpoint, last_updated_time=utc_now()))
        return await self.store.cancel_requested(operation_id)

    async def finish(self, operation_id: str, status: Status, results: dict[str, Any] | None,
                     error: str = "") -> None:
        """End the operation (``results=None``: keep the last checkpoint's)."""
        state = await self._state(operation_id)
        if state.status.terminal:
            return  # a repeated finish (a replayed activity) changes nothing
        percent = 100 if status is Status.SUCCEEDED else state.percent_complete
        await self.store.save(state.with_(status=status, results=state.results if results is None else results,
                                          percent_complete=percent, error=error, last_updated_time=utc_now()))

    async def run(self, kinds: dict[str, OperationKind], request: dict[str, Any]) -> Any:
        """One activity, as a runner without direct calls (Durable) sends it: a bookkeeping
        step (``{"bookkeeping": "begin" | "progress" | "finish", ...}``) or an operation
        type's activity (``{"type", "activity", "input"}``)."""
        operation_id = request.get("operationId", "")
        match request.get("bookkeeping"):
            case "begin":
                return await self.begin(operation_id)
            case "progress":
                return await self.progress(operation_id, request["percent"], request["results"],
                                           request["checkpoint"])
            case "finish":
                return await self.finish(operation_id, Status(request["status"]), request.get("results"),
                                         request.get("error", ""))
            case None:
                return await kinds[request["type"]].run_activity(request["activity"], request["input"])
        raise ValueError(f"unknown bookkeeping step {request.get('bookkeeping')!r}")
