"""The Durable orchestrator without a Functions host, its activities running for real against
the embedded store: driven with the SDK's testing helper
(``azure.durable_functions.testing.orchestrator_generator_wrapper``, which feeds each
yielded task's result back as replay does) for fan-out, ContinueAsNew, retries, a failing
activity and cancel; and replayed from recorded histories by the SDK's own executor."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import azure.durable_functions as df
import pytest
from azure.durable_functions.testing import orchestrator_generator_wrapper

from dicomweb import durable
from dicomweb.api.context import Services
from dicomweb.composition import build_services
from dicomweb.settings import Settings
from dicomweb.usecases import import_files
from dicomweb.usecases.import_files import import_input
from dicomweb.usecases.operations.lifecycle import Bookkeeping, start_operation
from indexing.operation_store import OperationState, Status
from tests.support.builders import many_instances

FILES = 20


class Task:
    """What the testing helper reads from a yielded task: ``result`` (raising for a failed activity)."""

    def __init__(self, result: Any = None, error: Exception | None = None) -> None:
        self._result, self._error = result, error

    @property
    def result(self) -> Any:
        if self._error is not None:
            raise self._error
        return self._result


class NoStart:
    async def start(self, state: OperationState) -> None:
        pass  # the test drives the orchestrator itself


class Context:
    """A DurableOrchestrationContext stand-in: each activity call runs the real activity at once."""

    def __init__(self, input: dict[str, Any], run: Callable[[dict[str, Any]], Any]) -> None:
        self.input, self.run = input, run
        self.calls: list[dict[str, Any]] = []
        self.fan_outs: list[int] = []
        self.retried: list[int] = []
        self.next_input: dict[str, Any] | None = None

    def get_input(self) -> dict[str, Any]:
        return self.input

    def call_activity(self, name: str, request: dict[str, Any]) -> Task:
        assert name == durable.ACTIVITY
        self.calls.append(request)
        try:
            return Task(self.run(request))
        except Exception as exc:
            return Task(error=exc)

    def call_activity_with_retry(self, name: str, retry: Any, request: dict[str, Any]) -> Task:
        for attempt in range(1, retry.max_number_of_attempts + 1):  # what Durable's retry policy does
            task = self.call_activity(name, request)
            try:
                _ = task.result
                return task
            except Exception:
                self.retried.append(attempt)
        return task

    def task_all(self, tasks: list[Task]) -> Task:
        self.fan_outs.append(len(tasks))
        for task in tasks:
            try:
                _ = task.result
            except Exception as exc:
                return Task(error=exc)
        return Task([task.result for task in tasks])

    def continue_as_new(self, input: dict[str, Any]) -> None:
        self.next_input = input


@pytest.fixture
def services(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Services]:
    monkeypatch.setattr(import_files, "PAGE_SIZE", 4)  # 5 pages: fan-outs and several generations
    monkeypatch.setattr(import_files, "PAGES_PER_GENERATION", 2)
    settings = Settings(data_dir=tmp_path / "data", operations_runner="durable")
    for i, data in enumerate(many_instances("1.2.826.0.1.3680043.8.498.7003", FILES)):
        path = settings.import_path / "wsi" / f"{i:03d}.dcm"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    wired = build_services(settings)
    yield wired
    asyncio.run(wired.close())


def _start(services: Services) -> OperationState:
    return asyncio.run(start_operation(services.operations, NoStart(), "import", import_input("wsi/", None, False)))


def _run_orchestration(services: Services, state: OperationState,
                       fail: Callable[[dict[str, Any]], bool] = lambda request: False) -> list[Context]:
    """Every generation of the orchestration, until it returns without continuing as new."""
    bookkeeping = Bookkeeping(services.operations)

    def run(request: dict[str, Any]) -> Any:
        if fail(request):
            raise ConnectionError("storage unreachable")
        return asyncio.run(bookkeeping.run(services.operation_kinds, request))

    generations: list[Context] = []
    start: dict[str, Any] | None = {"operationId": state.operation_id, "type": state.type}
    while start is not None:
        context = Context(start, run)
        list(orchestrator_generator_wrapper(durable.orchestrate(context, services.operation_kinds)))
        generations.append(context)
        start = context.next_input
    return generations


def _state(services: Services, operation_id: str) -> OperationState:
    state = asyncio.run(services.operations.get(operation_id))
    assert state is not None
    return state


def test_fans_out_checkpoints_and_continues_as_new(services: Services) -> None:
    state = _start(services)
    generations = _run_orchestration(services, state)

    assert len(generations) == 3  # 5 pages, 2 per generation
    assert all(0 < size <= import_files.PARALLEL for g in generations for size in g.fan_outs)
    assert all(len(g.calls) < 20 for g in generations)  # each history stays small
    assert generations[0].calls[0]["bookkeeping"] == "begin"  # only the first generation begins
    assert all(call.get("bookkeeping") != "begin" for g in generations[1:] for call in g.calls)
    final = _state(services, state.operation_id)
    assert final.status is Status.SUCCEEDED and final.percent_complete == 100
    assert final.results == {"imported": FILES, "skipped": 0, "failed": 0}


def test_a_failing_activity_is_retried(services: Services) -> None:
    state = _start(services)
    failures = iter([True, True])  # the first import call fails twice, then succeeds
    generations = _run_orchestration(
        services, state, fail=lambda request: request.get("activity") == "import" and next(failures, False))

    assert [attempt for g in generations for attempt in g.retried] == [1, 2]
    final = _state(services, state.operation_id)
    assert final.status is Status.SUCCEEDED and final.results["imported"] == FILES


def test_an_activity_failing_every_retry_fails_the_operation(services: Services) -> None:
    state = _start(services)
    generations = _run_orchestration(services, state, fail=lambda request: request.get("activity") == "list")

    assert len(generations[0].retried) == durable.RETRY.max_number_of_attempts
    final = _state(services, state.operation_id)
    assert final.status is Status.FAILED and "ConnectionError" in final.error
    assert "storage unreachable" not in final.error  # no error text from below (it could name a file)


def test_cancel_stops_at_the_next_checkpoint(services: Services) -> None:
    state = _start(services)

    def cancel_during_the_first_page(request: dict[str, Any]) -> bool:
        if request.get("activity") == "import":
            asyncio.run(services.operations.request_cancel(state.operation_id))
        return False

    _run_orchestration(services, state, fail=cancel_during_the_first_page)
    final = _state(services, state.operation_id)
    assert final.status is Status.CANCELED
    assert final.results["imported"] == import_files.PAGE_SIZE  # the page under way finished, no more


def test_cancelled_before_it_started_it_never_runs(services: Services) -> None:
    state = _start(services)
    asyncio.run(services.operations.request_cancel(state.operation_id))
    (generation,) = _run_orchestration(services, state)
    assert [call.get("bookkeeping") for call in generation.calls] == ["begin"]
    assert _state(services, state.operation_id).status is Status.CANCELED


# -- the SDK's own replay engine over recorded histories ----------------------------------

_TIME = "2026-01-01T00:00:00.000Z"


def _event(event_type: int, event_id: int, **fields: Any) -> dict[str, Any]:
    return {"EventType": event_type, "EventId": event_id, "IsPlayed": False, "Timestamp": _TIME, **fields}


def _started(start: dict[str, Any]) -> list[dict[str, Any]]:
    # OrchestratorStarted (12), ExecutionStarted (0)
    return [_event(12, -1), _event(0, -1, Input=json.dumps(start), Version="", Name=durable.ORCHESTRATOR)]


def test_replayed_by_the_sdk_from_its_history(services: Services) -> None:
    """Plays the host: each episode replays the whole recorded history through the SDK's
    orchestration executor (``df.Orchestrator``), runs the new activities it asks for and
    records them (TaskScheduled, TaskCompleted); a ContinueAsNew starts a fresh history."""
    state = _start(services)
    bookkeeping = Bookkeeping(services.operations)
    handle = df.Orchestrator.create(lambda context: durable.orchestrate(context, services.operation_kinds))
    start: dict[str, Any] = {"operationId": state.operation_id, "type": state.type}
    history, scheduled, generations, widest = _started(start), 0, 1, 0
    for _ in range(100):
        answer = json.loads(handle(json.dumps({"history": history, "instanceId": state.operation_id,
                                               "isReplaying": False, "parentInstanceId": None,
                                               "input": json.dumps(start)})))
        widest = max([widest, *(len(group) for group in answer["actions"])])
        new = [action for group in answer["actions"] for action in group][scheduled:]
        restart = [action for action in new if action["actionType"] == 4]  # ContinueAsNew
        if restart:
            start = json.loads(restart[0]["input"])
            history, scheduled, generations = _started(start), 0, generations + 1
            continue
        if answer["isDone"]:
            break
        history.append(_event(12, -1))
        for action in new:
            result = asyncio.run(bookkeeping.run(services.operation_kinds, json.loads(action["input"])))
            history += [_event(4, scheduled, Name=action["functionName"]),
                        _event(5, -1, TaskScheduledId=scheduled, Result=json.dumps(result))]
            scheduled += 1
    assert answer["isDone"] and answer["output"] == {"imported": FILES, "skipped": 0, "failed": 0}
    assert generations == 3 and 1 < widest <= import_files.PARALLEL
    assert _state(services, state.operation_id).status is Status.SUCCEEDED
