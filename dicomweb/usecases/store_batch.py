"""Store many instances at once: bulk import's fast path beside :class:`StoreInstance`.

What one :meth:`StoreInstance.store` does for a file, done for a batch of files so the
costs paid per file become costs paid per batch (docs/operations.md, "Import speed"):

1. every file is copied to staging, then all are placed under their instance names,
   exclusively, with one flush to disk for the lot (``BlobStore.put_files``) instead of a
   file and a folder fsync each;
2. the records and create entries of every placed file are committed in one index
   transaction (``IndexStore.add_instances``); if that fails, the files placed in step 1
   whose record did not commit are removed again (as :meth:`StoreInstance.store` does for
   one) and the error raised;
3. sidecars are written where the derived data lives in files (Blob Storage; the embedded
   index holds it, committed in step 2), the event publisher is nudged once.

A file whose name is taken (already stored, a copy left by a crash or a delete, a
duplicate within the batch) is handed to :meth:`StoreInstance.store` after the batch, which
knows every such case. The durability promised is the batch's: nothing is indexed before
its file is on disk, and a crash before the commit leaves files that the import's retry of
the batch (or start-up reconciliation) indexes.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from dicomcore import layout
from dicomweb.usecases.store_instance import FileSource, Prepared, StoreInstance
from indexing.records import new_record

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BatchItem:
    """One file of a batch: where its bytes are, and the instance read from them."""

    source: FileSource
    instance: Prepared
    stage: Callable[[Path], Awaitable[None]]
    """Copies the file's bytes to a local staging path."""


async def store_batch(store: StoreInstance, items: list[BatchItem]) -> list[bool]:
    """Store ``items``; per item, ``False`` when its instance was already stored."""
    staged = [store.blobs.new_staging_path() for _ in items]
    try:
        await asyncio.gather(*(item.stage(path) for item, path in zip(items, staged, strict=True)))
        names = [layout.file_name(item.instance.key) for item in items]
        placed = await store.blobs.put_files(list(zip(names, staged, strict=True)))
    finally:
        for path in staged:
            path.unlink(missing_ok=True)  # left behind when the name was taken
    fresh = [item for item, done in zip(items, placed, strict=True) if done]
    added = await _commit(store, fresh)
    outcome = dict(zip((id(item) for item in fresh), added, strict=True))
    results = []
    for item, done in zip(items, placed, strict=True):
        # Taken names go the one-file way, which sorts out what holds them.
        results.append(outcome[id(item)] if done else await store.store(item.source, item.instance))
    return results


async def _commit(store: StoreInstance, items: list[BatchItem]) -> list[bool]:
    if not items:
        return []
    records = [new_record(item.instance.parsed, item.instance.uids, item.instance.key, uuid.uuid4().hex,
                          item.instance.derived.attributes, item.source.sha256) for item in items]
    try:
        added = await store.sidecars.add_instances(records, [item.instance.derived for item in items])
    except BaseException:
        await _undo_placements(store, items)
        raise
    await asyncio.gather(*(_write_sidecars(store, item) for item in items))
    store.on_change()
    return added


async def _write_sidecars(store: StoreInstance, item: BatchItem) -> None:
    try:
        await store.sidecars.write(item.instance.key, item.instance.derived)
    except Exception:  # a cache: rebuilt from the file when read (usecases/sidecars.py)
        log.warning("sidecars of %s not written; they are rebuilt when read", layout.file_name(item.instance.key),
                    exc_info=True)


async def _undo_placements(store: StoreInstance, items: list[BatchItem]) -> None:
    """The index refused the batch: remove the files just placed whose record did not commit
    (a store that adds one by one may have committed the first ones)."""
    for item in items:
        try:
            if await store.index.get_instance_by_key(item.instance.key) is None:
                await store.blobs.delete(layout.file_name(item.instance.key))
        except Exception:
            log.exception("could not undo placing %s; verify --repair will", layout.file_name(item.instance.key))
    log.warning("indexing a batch of %d imported files failed; their files were removed again", len(items))
