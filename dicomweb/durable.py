"""The Azure runner: operations as Durable Functions orchestrations (v2 programming model).

The same orchestration the local runner drives (:mod:`dicomweb.usecases.operations.steps`)
runs inside a Durable orchestrator, step by step: a :class:`Call` becomes an activity call
with a retry policy, a :class:`FanOut` a ``task_all`` (bounded by the orchestration: it
puts at most a few calls in one fan-out), a :class:`Progress` the bookkeeping activity that
checkpoints and reports a cancel request, a :class:`ContinueAsNew` Durable's
``continue_as_new`` (the history restarts small). One generic activity runs every
activity of every operation type, so a new type needs no new function here.

How an operation starts: the HTTP app (``AsgiFunctionApp``, whose catch-all route would
swallow Durable's HTTP starter) puts ``{"operationId", "type"}`` on a storage queue
(:mod:`dicomweb.storage.azure_queue`); the queue trigger starts the orchestration with the
operation id as its instance id, once (a redelivered message finds the instance).

The operation's status lives in the operation store (Cosmos) as in embedded mode, written by
the bookkeeping activities, so ``GET /v1/operations/{id}`` reads the same place in both modes.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

import azure.durable_functions as df
import azure.functions as func

from dicomweb.api.context import Services
from dicomweb.usecases.operations.lifecycle import Bookkeeping
from dicomweb.usecases.operations.steps import Call, ContinueAsNew, FanOut, OperationKind, Progress
from indexing.operation_store import Status

ORCHESTRATOR = "operation_orchestrator"
ACTIVITY = "operation_activity"
RETRY = df.RetryOptions(first_retry_interval_in_milliseconds=2000, max_number_of_attempts=3)
"""An activity is tried three times (they are idempotent) before the operation fails."""


def _activity(type: str, call: Call) -> dict[str, Any]:
    return {"type": type, "activity": call.activity, "input": call.input}


def _bookkeeping(step: str, operation_id: str, **fields: Any) -> dict[str, Any]:
    return {"bookkeeping": step, "operationId": operation_id, **fields}


def orchestrate(context: Any, kinds: dict[str, OperationKind]) -> Generator[Any, Any, Any]:
    """The Durable orchestrator: drives the operation type's orchestration (deterministic:
    every decision comes from the input and the activities' recorded results)."""
    start: dict[str, Any] = context.get_input()
    operation_id, type = start["operationId"], start["type"]
    input = start.get("input")
    if input is None:  # the first generation; a ContinueAsNew carries its input
        input = yield context.call_activity(ACTIVITY, _bookkeeping("begin", operation_id))
        if input is None:
            return None  # already ended, or cancelled before it started
    job = kinds[type].orchestrate(operation_id, input)
    answer: Any = None
    try:
        while True:
            try:
                step = job.send(answer)
            except StopIteration as done:
                yield context.call_activity(ACTIVITY, _bookkeeping("finish", operation_id, status="succeeded",
                                                                  results=done.value))
                return done.value
            if isinstance(step, Call):
                answer = yield context.call_activity_with_retry(ACTIVITY, RETRY, _activity(type, step))
            elif isinstance(step, FanOut):
                answer = yield context.task_all([
                    context.call_activity_with_retry(ACTIVITY, RETRY, _activity(type, call)) for call in step.calls])
            elif isinstance(step, Progress):
                canceled = yield context.call_activity(ACTIVITY, _bookkeeping(
                    "progress", operation_id, percent=step.percent, results=step.results, checkpoint=step.checkpoint))
                if canceled:
                    yield context.call_activity(ACTIVITY, _bookkeeping("finish", operation_id, status="canceled",
                                                                      results=step.results))
                    return None
                answer = False
            elif isinstance(step, ContinueAsNew):
                context.continue_as_new({"operationId": operation_id, "type": type, "input": step.input})
                return None
    except Exception as exc:  # an activity failed after its retries
        yield context.call_activity(ACTIVITY, _bookkeeping(
            "finish", operation_id, status=Status.FAILED.value,
            error=f"{exc.__class__.__name__}: the operation stopped after an activity failed "
                  f"{RETRY.max_number_of_attempts} times"))
        return None


def blueprint(services: Services, queue_connection: str) -> df.Blueprint:
    """The orchestrator, the activity and the queue starter, for ``app.register_functions``."""
    bp = df.Blueprint()
    bookkeeping = Bookkeeping(services.operations)

    @bp.queue_trigger(arg_name="message", queue_name=services.settings.operations_queue,
                      connection=queue_connection)
    @bp.durable_client_input(client_name="client")
    async def start_operation(message: func.QueueMessage, client: df.DurableOrchestrationClient) -> None:
        body = message.get_json()
        existing = await client.get_status(body["operationId"])
        if existing is not None and existing.runtime_status is not None:
            return  # a redelivered message: the orchestration exists
        await client.start_new(ORCHESTRATOR, instance_id=body["operationId"],
                               client_input={"operationId": body["operationId"], "type": body["type"]})

    @bp.orchestration_trigger(context_name="context", orchestration=ORCHESTRATOR)
    def operation_orchestrator(context: df.DurableOrchestrationContext) -> Generator[Any, Any, Any]:
        return (yield from orchestrate(context, services.operation_kinds))

    @bp.activity_trigger(input_name="request", activity=ACTIVITY)
    async def operation_activity(request: dict[str, Any]) -> Any:
        return await bookkeeping.run(services.operation_kinds, request)

    return bp
