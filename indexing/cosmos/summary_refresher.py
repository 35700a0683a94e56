"""Study and series summaries recounted in batches, off the STOW path (issue 17: a stored
instance costs two Cosmos writes, its document and its feed entry, and no query).

An add into an existing series does not recount its summaries itself: it *touches* the
study here, and one pass a moment later (:data:`DELAY_SECONDS`) recounts every touched
series and study once, however many instances arrived meanwhile: one series and one study
write per batch instead of per instance. The recount is the store's own (COUNT queries
in the study's partition, written under an ETag precondition), so it stays exact under
concurrent writers in any number of processes, and any later recount repairs one that
was lost.

Bounds, and why they are acceptable (docs/architecture.md, "The cloud adapters"):

- *This process reads its own writes.* The index store settles (runs the pending pass
  at once) before every search, so a client that stored an instance and searches through
  the same process sees exact counts.
- *Another process* sees Number of Study/Series Related Instances and SOP Classes in Study
  late by at most one pass: :data:`DELAY_SECONDS` (0.5 s) plus the recount itself. The instance
  itself is found at once at every level: its document is written before STOW answers,
  and a new study or series is counted before STOW answers (see ``CosmosIndexStore._add``).
- *A crash* loses the touches not yet recounted; the counts of those studies stay stale
  until the next add or delete in the study recounts them, or ``dicomweb verify --repair``
  recounts every study.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

log = logging.getLogger(__name__)

DELAY_SECONDS = 0.5
"""How long touches gather before a pass: the adds of one multi-instance STOW (tens of ms
each) share a recount, and a steady stream of STOWs into one study pays one recount per
half second rather than one per instance."""

Recount = Callable[[str, frozenset[str], tuple[str, ...]], Awaitable[None]]
"""Recount one study: its UID, the series touched, the SOP classes added (in order)."""


@dataclass
class _Touched:
    series: set[str] = field(default_factory=set)
    sop_classes: list[str] = field(default_factory=list)


class SummaryRefresher:
    """Touched studies, recounted in batches by a task of the running event loop."""

    def __init__(self, recount: Recount, delay: float | None = None) -> None:
        self._recount = recount
        self._delay = DELAY_SECONDS if delay is None else delay
        self._touched: dict[str, _Touched] = {}
        self._lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None

    def touch(self, study_uid: str, series_uid: str, sop_class_uid: str) -> None:
        """An instance was added to an existing series of this study: recount soon."""
        touched = self._touched.setdefault(study_uid, _Touched())
        touched.series.add(series_uid)
        if sop_class_uid not in touched.sop_classes:
            touched.sop_classes.append(sop_class_uid)
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run_later())

    @property
    def pending(self) -> bool:
        return bool(self._touched)

    async def _run_later(self) -> None:
        while self._touched:
            await asyncio.sleep(self._delay)
            if not await self._pass():
                return  # failing: the next touch or settle tries again, rather than a busy loop

    async def settle(self) -> None:
        """Recount every study touched so far, now. Never raises: a recount that fails
        (Cosmos unreachable) is kept for the next pass and logged."""
        await self._pass()

    async def _pass(self) -> bool:
        """One pass over the touched studies; ``False`` when a recount failed."""
        async with self._lock:
            batch, self._touched = self._touched, {}
            results = await asyncio.gather(
                *(self._recount(study, frozenset(t.series), tuple(t.sop_classes)) for study, t in batch.items()),
                return_exceptions=True)
            for (study, touched), result in zip(batch.items(), results, strict=True):
                if isinstance(result, BaseException):
                    log.warning("study summary recount failed; kept for the next pass: %s", type(result).__name__)
                    again = self._touched.setdefault(study, _Touched())
                    again.series |= touched.series
                    again.sop_classes.extend(c for c in touched.sop_classes if c not in again.sop_classes)
            return not any(isinstance(result, BaseException) for result in results)

    async def close(self) -> None:
        """Recount what is left (the store is closing) and stop the task."""
        if self._touched:
            await self.settle()
        if self._task is not None and not self._task.done():
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
