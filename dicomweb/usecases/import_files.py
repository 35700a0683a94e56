"""Bulk import: every file under a prefix of the import area, stored exactly as STOW stores it.

The job, as an orchestration (:mod:`dicomweb.usecases.operations.steps`):

1. ``count`` the files under the prefix (for ``percentComplete``);
2. repeatedly ``list`` the next page of names after the cursor, ``import`` it as
   :data:`PARALLEL` chunks in parallel, and record a checkpoint (cursor and counts);
3. every :data:`PAGES_PER_GENERATION` pages, continue as new from the checkpoint, so a
   Durable history stays small whatever the number of files.

Each file goes through :class:`~dicomweb.usecases.store_instance.StoreInstance` (validated,
placed exclusively, indexed, entered in the change feed once), so a file imported twice —
a restarted batch, a second import, the same instance sent by STOW meanwhile — is stored
once and counted ``skipped``. A file that is not a valid instance is counted ``failed``
and written to the operation's error log (JSON lines, one blob per chunk, named by the
chunk so a redone chunk rewrites its own lines); it never stops the operation.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from dicomcore.clock import utc_now
from dicomcore.instance import InvalidInstanceError, read_instance
from dicomcore.threads import in_thread
from dicomcore.validation import ValidationError
from dicomweb.storage.port import BlobExistsError, BlobNotFoundError, BlobStore, ImportArea, ImportAreaError
from dicomweb.usecases.operations.steps import Call, ContinueAsNew, FanOut, Orchestration, Progress
from dicomweb.usecases.store_batch import BatchItem, store_batch
from dicomweb.usecases.store_instance import Prepared, StoreInstance, prepare

log = logging.getLogger(__name__)

TYPE = "import"
PAGE_SIZE = 400
"""Names listed per page; one checkpoint per page."""
PARALLEL = 8
"""Chunks of a page imported at once (the bound on the fan-out)."""
PAGES_PER_GENERATION = 25
"""Pages before ContinueAsNew (keeps a Durable history to a few hundred events)."""

ImportAreas = Callable[[str | None], ImportArea]
"""The import area for a container name (``None``: the configured one)."""


def errors_prefix(operation_id: str) -> str:
    """Where an operation's error log lies in the blob store (under ``state/``, which the
    blob-created handler ignores)."""
    return f"state/operations/{operation_id}/errors/"


@dataclass(frozen=True)
class ImportedCopy:
    """A file of the import area: copied into the store (the source stays where it is)."""

    area: ImportArea
    name: str
    sha256: str = ""
    """Not computed: a copy found stored but unindexed is then repaired and counted skipped."""

    async def place(self, blobs: BlobStore, name: str) -> None:
        staging = blobs.new_staging_path()
        try:
            await self.area.copy_to(self.name, staging)
            await blobs.put_file(name, staging, exclusive=True)
        finally:
            staging.unlink(missing_ok=True)  # left behind when the instance was already stored


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
        counts = {"imported": 0, "skipped": 0, "failed": 0}
        errors: list[dict[str, str]] = []
        read = await in_thread(_read_all, area, names, self.store.sidecars.bulkdata_threshold)
        items = {name: _batch_item(area, name, outcome) for name, outcome in zip(names, read, strict=True)
                 if isinstance(outcome, Prepared)}
        stored = await self._store_batch(items)
        for name, outcome in zip(names, read, strict=True):
            if isinstance(outcome, str):
                counts["failed"] += 1
                errors.append({"timestamp": utc_now(), "file": name, "error": outcome})
                continue
            result = stored.get(name)
            counts["failed" if isinstance(result, str) else "imported" if result else "skipped"] += 1
            if isinstance(result, str):
                errors.append({"timestamp": utc_now(), "file": name, "error": result})
            elif delete_source:
                await area.delete(name)
        if errors:
            chunk = hashlib.sha256("\n".join(names).encode()).hexdigest()[:32]
            lines = "".join(json.dumps(error) + "\n" for error in errors)
            await self.blobs.put_bytes(f"{errors_prefix(operation_id)}{chunk}.jsonl", lines.encode())
        return counts

    async def _store_batch(self, items: dict[str, BatchItem]) -> dict[str, bool | str]:
        """Per file name: stored (``True``), already stored (``False``), or why it failed."""
        try:
            results = await store_batch(self.store, list(items.values()))
        except BlobNotFoundError:  # a file vanished before it was copied: the others still go in
            return {name: await self._store_one(item) for name, item in items.items()}
        return dict(zip(items, results, strict=True))

    async def _store_one(self, item: BatchItem) -> bool | str:
        try:
            return await self.store.store(item.source, item.instance)
        except BlobNotFoundError:
            return "the file was removed before it could be imported"
        except BlobExistsError:
            return False


def _batch_item(area: ImportArea, name: str, instance: Prepared) -> BatchItem:
    return BatchItem(ImportedCopy(area, name), instance, lambda path: area.copy_to(name, path))


def _read_all(area: ImportArea, names: list[str], bulkdata_threshold: int) -> list[Prepared | str]:
    """Each file read and checked (one worker-thread trip for the chunk), or why it is not an instance."""
    return [_read_or_reason(area, name, bulkdata_threshold) for name in names]


def _read_or_reason(area: ImportArea, name: str, bulkdata_threshold: int) -> Prepared | str:
    try:
        return _read(area, name, bulkdata_threshold)
    except (InvalidInstanceError, ValidationError, ImportAreaError) as exc:
        return str(exc)
    except BlobNotFoundError:
        return "the file was removed before it could be imported"


def _read(area: ImportArea, name: str, bulkdata_threshold: int) -> Prepared:
    with area.open_reader(name) as reader:
        parsed = read_instance(reader)
    return prepare(parsed, bulkdata_threshold)


async def read_error_log(blobs: BlobStore, operation_id: str) -> list[bytes]:
    """The error log's JSON lines, chunk by chunk."""
    names = [name async for name in blobs.list_names(errors_prefix(operation_id))]
    return [blob for blob in await blobs.get_many(names) if blob]
