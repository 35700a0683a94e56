"""The sync: follow the change feed and keep FHIR in step, exactly once in effect.

A catch-up reads the feed in batches after the saved position, groups each batch's entries
by study (one transaction per study change, however many of its instances changed), syncs
the studies, and only then saves the position. Kill it at any moment: the batch is done
again on restart, and :class:`~.study_sync.StudySync` makes that change nothing.

Any action re-syncs its study from the archive's current state, so entry kinds other than
create and delete (updates, now or later) cannot stop the worker. Transient errors are
retried with back-off (:mod:`.retry`); when they persist the catch-up stops without
saving, and is run again later. Other errors are recorded with their reason (never a
patient value) and the sync moves on; :meth:`CastSync.retry_failures` tries them again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from pydantic import ValidationError

from dicomweb.usecases.cast.ports import (
    ArchiveUnavailable,
    CastProgress,
    CastStateStore,
    Failure,
    FeedEntry,
    FeedSource,
    FhirClient,
    FhirError,
)
from dicomweb.usecases.cast.retry import RetryPolicy, with_retries
from dicomweb.usecases.cast.snapshot import InvalidStudy

if TYPE_CHECKING:  # its fhir.resources models cost ~0.15 s to import: only where DICOMcast runs
    from dicomweb.usecases.cast.study_sync import StudySync

log = logging.getLogger(__name__)

BATCH = 1000
CONCURRENCY = 4
FHIR_VERSIONS = ("4.0", "4.3")  # R4 and R4B: the same Patient, Endpoint and ImagingStudy
NEEDED_TYPES = ("Patient", "Endpoint", "ImagingStudy")


class CastUnavailable(Exception):
    """The FHIR server or the archive kept failing transiently: nothing was saved; run again later."""


class FhirServerUnsuitable(Exception):
    """The FHIR server's CapabilityStatement lacks what the sync needs."""


@dataclass
class CatchUpResult:
    entries: int = 0
    studies: int = 0
    failed: int = 0
    position: int = 0


def is_transient(error: BaseException) -> bool:
    return isinstance(error, ArchiveUnavailable) or (isinstance(error, FhirError) and error.transient)


def failure_reason(error: Exception) -> str:
    """What went wrong, without the offending value (it may be patient data)."""
    if isinstance(error, ValidationError):
        problems = [f"{'.'.join(str(part) for part in item['loc'])}: {item['msg']}" for item in error.errors()]
        return "FHIR model rejected the resource: " + "; ".join(problems)[:500]
    if isinstance(error, FhirError):
        return f"FHIR server answered {error.status}: {error.reason}"[:1000]
    if isinstance(error, InvalidStudy):
        return str(error)
    return f"{type(error).__name__}"


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def capability_problems(statement: dict[str, object]) -> list[str]:
    """What the CapabilityStatement says is missing for the sync (empty: all there)."""
    problems = []
    version = str(statement.get("fhirVersion", ""))
    if not version.startswith(FHIR_VERSIONS):
        problems.append(f"fhirVersion is {version or 'not given'}, not R4 (4.0.x)")
    rests = statement.get("rest") or []
    rest = rests[0] if isinstance(rests, list) and rests else {}
    interactions = {item.get("code") for item in rest.get("interaction", [])} if isinstance(rest, dict) else set()
    if "transaction" not in interactions:
        problems.append("the system interaction 'transaction' is not supported")
    types = {item.get("type") for item in rest.get("resource", [])} if isinstance(rest, dict) else set()
    problems.extend(f"resource type {name} is not supported" for name in NEEDED_TYPES if types and name not in types)
    return problems


class CastSync:
    def __init__(self, fhir: FhirClient, feed: FeedSource, study_sync: StudySync, state: CastStateStore, *,
                 batch: int = BATCH, concurrency: int = CONCURRENCY, retry: RetryPolicy | None = None) -> None:
        self.fhir = fhir
        self.feed = feed
        self.study_sync = study_sync
        self.state = state
        self.batch = batch
        self.concurrency = concurrency
        self.retry = retry or RetryPolicy()
        self._lock = asyncio.Lock()
        self._checked = False

    async def check_server(self) -> None:
        """Raise :class:`FhirServerUnsuitable` saying what the FHIR server lacks
        (:class:`CastUnavailable` when it cannot be asked now)."""
        try:
            statement = await with_retries(self.fhir.capabilities, self.retry, is_transient)
        except FhirError as error:
            if error.transient:
                raise CastUnavailable(f"GET /metadata: {failure_reason(error)}") from error
            raise FhirServerUnsuitable(f"GET /metadata failed: {failure_reason(error)}") from error
        problems = capability_problems(statement)
        if problems:
            raise FhirServerUnsuitable("the FHIR server cannot be synced: " + "; ".join(problems))
        self._checked = True

    async def _sync_study(self, study_uid: str) -> None:
        await with_retries(lambda: self.study_sync.sync(study_uid), self.retry, is_transient)

    async def _sync_group(self, studies: dict[str, int]) -> list[Failure]:
        """Sync each study (a few at a time); the non-transient failures, or raise CastUnavailable."""
        gate = asyncio.Semaphore(self.concurrency)

        async def one(study_uid: str, sequence: int) -> Failure | None:
            async with gate:
                try:
                    await self._sync_study(study_uid)
                    return None
                except Exception as error:
                    if is_transient(error):
                        raise CastUnavailable(failure_reason(error)) from error
                    log.warning("DICOMcast: study of change %d not synced (%s)", sequence, type(error).__name__)
                    return Failure(study_uid, sequence, failure_reason(error), _now())

        results = await asyncio.gather(*(one(uid, seq) for uid, seq in studies.items()), return_exceptions=True)
        for result in results:
            if isinstance(result, BaseException):
                raise result
        return [result for result in results if isinstance(result, Failure)]

    async def catch_up(self, *, max_batches: int | None = None) -> CatchUpResult:
        """Sync every entry after the saved position; raise :class:`CastUnavailable` when FHIR is down."""
        if not self._checked:
            await self.check_server()
        async with self._lock:
            progress = await self.state.load()
            result = CatchUpResult(position=progress.sequence)
            batches = 0
            while max_batches is None or batches < max_batches:
                entries = await self._read(progress.sequence)
                if not entries:
                    break
                failures = await self._sync_group(_last_entry_per_study(entries))
                _record(progress, entries, failures)
                progress.sequence = entries[-1].sequence
                await self.state.save(progress)
                result.entries += len(entries)
                result.studies += len({entry.study_uid for entry in entries})
                result.failed += len(failures)
                result.position = progress.sequence
                batches += 1
            return result

    async def _read(self, after: int) -> list[FeedEntry]:
        try:
            return await with_retries(lambda: self.feed.read(after, self.batch), self.retry, is_transient)
        except ArchiveUnavailable as error:
            raise CastUnavailable(f"the change feed cannot be read: {error}") from error

    async def close(self) -> None:
        await self.fhir.close()
        await self.feed.close()

    async def failures(self) -> list[Failure]:
        return list((await self.state.load()).failures or [])

    async def retry_failures(self, study_uid: str | None = None) -> list[Failure]:
        """Sync the recorded failures again (all, or one study's); the failures that remain."""
        async with self._lock:
            progress = await self.state.load()
            chosen = {f.study_uid: f.sequence for f in progress.failures or [] if study_uid in (None, f.study_uid)}
            again = await self._sync_group(chosen)
            retried = set(chosen)
            kept = [failure for failure in progress.failures or [] if failure.study_uid not in retried]
            progress.failures = kept + again
            await self.state.save(progress)
            return progress.failures


def _last_entry_per_study(entries: list[FeedEntry]) -> dict[str, int]:
    studies: dict[str, int] = {}
    for entry in entries:
        studies[entry.study_uid] = entry.sequence
    return studies


def _record(progress: CastProgress, entries: list[FeedEntry], failures: list[Failure]) -> None:
    """A study synced now has no failure left; one that failed now has its latest reason only."""
    touched = {entry.study_uid for entry in entries}
    kept = [failure for failure in progress.failures or [] if failure.study_uid not in touched]
    progress.failures = kept + failures


class CastRunner:
    """Runs catch-ups for as long as the process lives: when kicked (a new change) or every
    ``poll_seconds`` (which also retries after the FHIR server was unavailable)."""

    def __init__(self, sync: CastSync, poll_seconds: float) -> None:
        self.sync = sync
        self.poll_seconds = poll_seconds
        self._wake = asyncio.Event()

    def kick(self) -> None:
        self._wake.set()

    async def run(self) -> None:
        while True:
            self._wake.clear()
            try:
                await self.sync.catch_up()
            except (CastUnavailable, FhirServerUnsuitable) as error:
                log.warning("DICOMcast: %s; trying again in %.0f s", error, self.poll_seconds)
            except Exception:
                log.exception("DICOMcast: catch-up failed; trying again in %.0f s", self.poll_seconds)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.poll_seconds)
