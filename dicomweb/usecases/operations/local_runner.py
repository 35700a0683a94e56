"""The embedded server's runner: drives orchestrations in the server process.

Each operation runs as an asyncio task. Its checkpoints go to the operation store (the
``operation`` table of ``index.sqlite``), so after a clean stop or a ``kill -9`` the
server resumes every unfinished operation at start-up (:meth:`LocalRunner.resume_unfinished`)
from its last checkpoint; the activities being idempotent, redoing the batch that was
under way when the process died duplicates nothing.

With several server processes on one data folder (``--workers N``), each resumes the
unfinished operations at start-up; a lock file per operation (``flock``, released by the
kernel when its holder exits, ``kill -9`` included) lets exactly one of them run it.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
from pathlib import Path
from typing import Any

from dicomcore.threads import in_thread
from dicomweb.usecases.operations.lifecycle import Bookkeeping
from dicomweb.usecases.operations.steps import Call, ContinueAsNew, FanOut, OperationKind, Orchestration, Progress
from indexing.operation_store import OperationState, OperationStore, Status

log = logging.getLogger(__name__)

ACTIVITY_ATTEMPTS = 3
"""Tries per activity before the operation fails (as Durable's retry policy)."""
RETRY_SECONDS = 1.0


class LocalRunner:
    def __init__(self, store: OperationStore, kinds: dict[str, OperationKind], lock_dir: Path) -> None:
        self.store = store
        self.kinds = kinds
        self.lock_dir = lock_dir
        self.bookkeeping = Bookkeeping(store)
        self._tasks: dict[str, asyncio.Task[None]] = {}

    async def start(self, state: OperationState) -> None:
        if state.operation_id not in self._tasks:
            task = asyncio.get_running_loop().create_task(self._run(state.operation_id, state.type))
            self._tasks[state.operation_id] = task
            task.add_done_callback(lambda _: self._tasks.pop(state.operation_id, None))

    async def resume_unfinished(self) -> None:
        """Start every operation a previous process left running (or never started)."""
        for state in await self.store.unfinished():
            log.info("resuming operation %s (%s)", state.operation_id, state.type)
            await self.start(state)

    async def stop(self) -> None:
        """Stop the running jobs where they are; their checkpoints stay for the next start."""
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def wait(self, operation_id: str) -> None:
        """Until the operation's task ends (tests, the in-process CLI)."""
        task = self._tasks.get(operation_id)
        if task is not None:
            await asyncio.shield(task)

    async def _run(self, operation_id: str, type: str) -> None:
        lock = await in_thread(self._lock, operation_id)
        if lock is None:
            return  # another server process runs it
        try:
            await self._run_locked(operation_id, type)
        finally:
            os.close(lock)

    def _lock(self, operation_id: str) -> int | None:
        """An exclusive lock on the operation's lock file, or ``None`` when another process holds it."""
        self.lock_dir.mkdir(parents=True, exist_ok=True)
        descriptor = os.open(self.lock_dir / f"{operation_id}.lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(descriptor)
            return None
        return descriptor

    async def _run_locked(self, operation_id: str, type: str) -> None:
        kind = self.kinds.get(type)
        if kind is None:
            await self.bookkeeping.finish(operation_id, Status.FAILED, {}, f"unknown operation type {type!r}")
            return
        input = await self.bookkeeping.begin(operation_id)
        if input is None:
            return
        try:
            await self._drive(operation_id, kind, kind.orchestrate(operation_id, input))
        except asyncio.CancelledError:
            raise  # the server is stopping: the checkpoint stays, the job resumes at the next start
        except Exception as exc:
            log.exception("operation %s failed", operation_id)
            state = await self.store.get(operation_id)
            await self.bookkeeping.finish(operation_id, Status.FAILED, state.results if state else {},
                                          f"{exc.__class__.__name__}: the operation stopped after its activity failed "
                                          f"{ACTIVITY_ATTEMPTS} times")

    async def _drive(self, operation_id: str, kind: OperationKind, orchestration: Orchestration) -> None:
        answer: Any = None
        while True:
            try:
                step = orchestration.send(answer)
            except StopIteration as done:
                await self.bookkeeping.finish(operation_id, Status.SUCCEEDED, done.value)
                return
            if isinstance(step, Call):
                answer = await self._call(kind, step)
            elif isinstance(step, FanOut):
                answer = list(await asyncio.gather(*(self._call(kind, call) for call in step.calls)))
            elif isinstance(step, Progress):
                if await self.bookkeeping.progress(operation_id, step.percent, step.results, step.checkpoint):
                    orchestration.close()
                    await self.bookkeeping.finish(operation_id, Status.CANCELED, step.results)
                    return
                answer = False
            elif isinstance(step, ContinueAsNew):
                orchestration.close()
                orchestration, answer = kind.orchestrate(operation_id, step.input), None

    @staticmethod
    async def _call(kind: OperationKind, call: Call) -> Any:
        for attempt in range(1, ACTIVITY_ATTEMPTS + 1):
            try:
                return await kind.run_activity(call.activity, call.input)
            except Exception:
                if attempt == ACTIVITY_ATTEMPTS:
                    raise
                log.warning("activity %s failed (attempt %d of %d); retrying", call.activity, attempt,
                            ACTIVITY_ATTEMPTS, exc_info=True)
                await asyncio.sleep(RETRY_SECONDS * attempt)
        raise AssertionError("unreachable")
