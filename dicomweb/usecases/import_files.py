"""Bulk import: every file under a prefix of the import area, stored exactly as STOW stores it.

The job, as an orchestration (:mod:`dicomweb.usecases.operations.steps`):

1. ``count`` the files under the prefix (for ``percentComplete``);
2. repeatedly ``list`` the next page of names after the cursor, ``import`` it as
   :data:`PARALLEL` chunks in parallel, and record a checkpoint (cursor and counts);
3. every :data:`PAGES_PER_GENERATION` pages, continue as new from the checkpoint, so a
   Durable history stays small whatever the number of files.

A chunk is read, checked and staged in one worker-thread trip (a small file is read once:
parsed from memory and staged from the same bytes), then stored as a batch
(:func:`~dicomweb.usecases.store_batch.store_batch`: one flush to disk and one index
transaction for the chunk; a taken name goes through
:class:`~dicomweb.usecases.store_instance.StoreInstance`, which knows every such case), and
its sources are deleted (``deleteSource``) in one call, only after its records are committed.
So a file imported twice — a restarted batch, a second import, the same instance sent by
STOW meanwhile — is stored once and counted ``skipped``. A file that is not a valid instance
is counted ``failed`` and written to the operation's error log (JSON lines, one blob per
chunk, named by the chunk so a redone chunk rewrites its own lines); it never stops the
operation.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dicomcore.clock import utc_now
from dicomcore.instance import InvalidInstanceError, read_instance
from dicomcore.threads import in_thread
from dicomcore.validation import ValidationError
from dicomweb.storage.port import BlobNotFoundError, BlobStore, ImportArea, ImportAreaError
from dicomweb.usecases.operations.steps import Call, ContinueAsNew, FanOut, Orchestration, Progress
from dicomweb.usecases.store_batch import BatchItem, store_batch
from dicomweb.usecases.store_instance import Prepared, StoreInstance, prepare

log = logging.getLogger(__name__)

TYPE = "import"
PAGE_SIZE = 1000
"""Names listed per page; one checkpoint per page."""
PARALLEL = 8
"""Chunks of a page imported at once (the bound on the fan-out). A chunk pays one flush to
disk and one index transaction however many files it has: fewer, larger chunks cost less
(docs/performance.md, "Import speed (session 3)"); a few still overlap one's flush with
another's parsing."""
PAGES_PER_GENERATION = 25
"""Pages before ContinueAsNew (keeps a Durable history to a few hundred events)."""
SMALL_FILE = 1 << 20
"""Files up to this size are read whole into memory once (see :func:`_read`)."""
VANISHED = "the file was removed before it could be imported"

ImportAreas = Callable[[str | None], ImportArea]
"""The import area for a container name (``None``: the configured one)."""


def errors_prefix(operation_id: str) -> str:
    """Where an operation's error log lies in the blob store (under ``state/``, which the
    blob-created handler ignores)."""
    return f"state/operations/{operation_id}/errors/"


def import_input(prefix: str, container: str | None, delete_source: bool) -> dict[str, Any]:
    """The operation's start input."""
    return {"prefix": prefix, "container": container, "deleteSource": delete_source}


def orchestrate(operation_id: str, input: dict[str, Any]) -> Orchestration:
    """The import job; ``input`` is the start input or a checkpoint (same shape, more keys)."""
    job = dict(input)
    source = {"prefix": job["prefix"], "container": job.get("container")}
    if job.get("total") is None:
        job["total"] = yield Call("count", source)
    for _ in range(PAGES_PER_GENERATION):
        page = yield Call("list", {**source, "cursor": job.get("cursor")})
        names: list[str] = page["names"]
        if names:
            chunks = [names[i::PARALLEL] for i in range(PARALLEL) if names[i::PARALLEL]]
            outcomes = yield FanOut([Call("import", {**source, "operationId": operation_id, "names": chunk,
                                                     "deleteSource": bool(job.get("deleteSource"))})
                                     for chunk in chunks])
            for key in ("imported", "skipped", "failed"):
                job[key] = job.get(key, 0) + sum(outcome[key] for outcome in outcomes)
        job["cursor"] = page["next"]
        if page["next"] is None:
            return results(job)
        yield Progress(_percent(job), results(job), checkpoint=job)
    yield ContinueAsNew(job)
    return results(job)  # not reached: a runner starts afresh on ContinueAsNew


def starting_results() -> dict[str, Any]:
    """The counts an import shows before its first page (and keeps if cancelled then)."""
    return results({})


def results(job: dict[str, Any]) -> dict[str, Any]:
    """The operation's ``results`` (``errorHref`` is added when answering: it is a URL)."""
    return {key: job.get(key, 0) for key in ("imported", "skipped", "failed")}


def _percent(job: dict[str, Any]) -> int:
    done = sum(job.get(key, 0) for key in ("imported", "skipped", "failed"))
    return min(99, done * 100 // job["total"]) if job.get("total") else 0


class ImportFiles:
    """The ``import`` operation type: the orchestration and its activities, over its ports."""

    name = TYPE

    def __init__(self, areas: ImportAreas, store: StoreInstance, blobs: BlobStore) -> None:
        self.areas = areas
        self.store = store
        self.blobs = blobs

    def orchestrate(self, operation_id: str, input: dict[str, Any]) -> Orchestration:
        return orchestrate(operation_id, input)

    async def run_activity(self, activity: str, input: dict[str, Any]) -> Any:
        area = self.areas(input.get("container"))
        if activity == "count":
            return await area.count(input["prefix"])
        if activity == "list":
            names, cursor = await area.list_page(input["prefix"], input.get("cursor"), PAGE_SIZE)
            return {"names": names, "next": cursor}
        if activity == "import":
            return await self.import_chunk(area, input["operationId"], input["names"], input["deleteSource"])
        raise ValueError(f"the import operation has no activity {activity!r}")

    async def import_chunk(self, area: ImportArea, operation_id: str, names: list[str],
                           delete_source: bool) -> dict[str, int]:
        read = await in_thread(_read_all, area, names, self.blobs.new_staging_path,
                               self.store.sidecars.bulkdata_threshold)
        try:
            outcomes = await self._store_read(area, names, read)
        finally:
            for staged in (outcome.staged for outcome in read if isinstance(outcome, Staged)):
                staged.unlink(missing_ok=True)  # store_batch's already; a large copy that failed
        counts = {"imported": 0, "skipped": 0, "failed": 0}
        errors: list[dict[str, str]] = []
        for name, result in zip(names, outcomes, strict=True):
            counts["failed" if isinstance(result, str) else "imported" if result else "skipped"] += 1
            if isinstance(result, str):
                errors.append({"timestamp": utc_now(), "file": name, "error": result})
        if delete_source:  # only now: every record of the chunk is committed
            await area.delete_many([name for name, result in zip(names, outcomes, strict=True)
                                    if not isinstance(result, str)])
        if errors:
            chunk = hashlib.sha256("\n".join(names).encode()).hexdigest()[:32]
            lines = "".join(json.dumps(error) + "\n" for error in errors)
            await self.blobs.put_bytes(f"{errors_prefix(operation_id)}{chunk}.jsonl", lines.encode())
        return counts

    async def _store_read(self, area: ImportArea, names: list[str],
                          read: list[Staged | str]) -> list[bool | str]:
        """Per file: stored (``True``), already stored (``False``), or why it failed."""
        outcomes: list[bool | str] = list(read)  # type: ignore[arg-type]  # the Staged ones are replaced
        await asyncio.gather(*(self._copy_large(area, name, outcome, outcomes, i)
                               for i, (name, outcome) in enumerate(zip(names, read, strict=True))
                               if isinstance(outcome, Staged) and not outcome.copied))
        batch = [(i, outcome) for i, outcome in enumerate(read)
                 if isinstance(outcome, Staged) and not isinstance(outcomes[i], str)]
        stored = await store_batch(self.store, [BatchItem(outcome.staged, outcome.instance) for _, outcome in batch])
        for (i, _), result in zip(batch, stored, strict=True):
            outcomes[i] = result
        return outcomes

    @staticmethod
    async def _copy_large(area: ImportArea, name: str, outcome: Staged, outcomes: list[bool | str], i: int) -> None:
        try:
            await area.copy_to(name, outcome.staged)
        except BlobNotFoundError:
            outcomes[i] = VANISHED


@dataclass(frozen=True)
class Staged:
    """A file of the import area read and checked, its bytes at a local staging path."""

    instance: Prepared
    staged: Path
    copied: bool
    """The bytes are at ``staged`` already (a small file); else the caller copies them there."""


def _read_all(area: ImportArea, names: list[str], new_staging_path: Callable[[], Path],
              bulkdata_threshold: int) -> list[Staged | str]:
    """Each file read, checked and (when small) staged in one worker-thread trip for the
    chunk, or why it is not an instance."""
    return [_read_or_reason(area, name, new_staging_path(), bulkdata_threshold) for name in names]


def _read_or_reason(area: ImportArea, name: str, staged: Path, bulkdata_threshold: int) -> Staged | str:
    try:
        return _read(area, name, staged, bulkdata_threshold)
    except (InvalidInstanceError, ValidationError, ImportAreaError) as exc:
        return str(exc)
    except BlobNotFoundError:
        return VANISHED


def _read(area: ImportArea, name: str, staged: Path, bulkdata_threshold: int) -> Staged:
    """A small file is read once: parsed from memory and staged from the same bytes (so what
    is stored is exactly what was checked, and the source is opened once); a larger one is
    parsed from its reader (only the header is read) and copied afterwards."""
    with area.open_reader(name) as reader:
        size = reader.seek(0, io.SEEK_END)
        reader.seek(0)
        if size > SMALL_FILE:
            return Staged(prepare(read_instance(reader), bulkdata_threshold), staged, copied=False)
        data = reader.read()
    instance = prepare(read_instance(io.BytesIO(data)), bulkdata_threshold)
    with open(staged, "wb") as out:  # made durable by the batch's one flush (BlobStore.put_files)
        out.write(data)
    return Staged(instance, staged, copied=True)


async def read_error_log(blobs: BlobStore, operation_id: str) -> list[bytes]:
    """The error log's JSON lines, chunk by chunk."""
    names = [name async for name in blobs.list_names(errors_prefix(operation_id))]
    return [blob for blob in await blobs.get_many(names) if blob]
