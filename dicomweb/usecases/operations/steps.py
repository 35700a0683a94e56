"""What an orchestration is: a deterministic generator of steps, driven by a runner.

An operation type describes its job as a generator (:data:`Orchestration`) that yields
steps and receives their results:

- :class:`Call`: run one activity, get its result (retried by the runner; activities are
  idempotent, so running one twice is harmless);
- :class:`FanOut`: run several activities in parallel, get their results in order (the
  orchestration bounds the parallelism by how many calls it puts in one fan-out);
- :class:`Progress`: record a checkpoint (the input to resume from), the percentage and
  the results so far; the answer is ``True`` when a cancel was requested (the runner then
  stops the operation, status ``canceled``);
- :class:`ContinueAsNew`: start afresh from this input (Durable's ``continue_as_new``:
  keeps the history of a job of millions of items small).

The generator's return value is the operation's final ``results``. Why generators: a
Durable Functions orchestrator *is* a generator that yields tasks and is replayed from its
history, so the same description runs there unchanged (:mod:`dicomweb.durable`), and the
local runner (:mod:`.local_runner`) drives it with plain ``await``. Like any Durable
orchestrator, it must be deterministic: no clock, no randomness, no I/O outside activities.
"""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass, field
from typing import Any, Protocol


@dataclass(frozen=True)
class Call:
    activity: str
    input: dict[str, Any]


@dataclass(frozen=True)
class FanOut:
    calls: list[Call]


@dataclass(frozen=True)
class Progress:
    percent: int
    results: dict[str, Any]
    checkpoint: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ContinueAsNew:
    input: dict[str, Any]


Step = Call | FanOut | Progress | ContinueAsNew
Orchestration = Generator[Step, Any, dict[str, Any]]


class OperationKind(Protocol):
    """One type of operation: its orchestration and its activities."""

    name: str
    """The ``type`` clients see (e.g. ``import``)."""

    def orchestrate(self, operation_id: str, input: dict[str, Any]) -> Orchestration:
        """The job from ``input`` (the start input, or a checkpoint / ContinueAsNew input)."""
        ...

    async def run_activity(self, activity: str, input: dict[str, Any]) -> Any:
        """Run one named activity; JSON in, JSON out (Durable passes them through its history)."""
        ...
