"""Extended query tags: the registry (add, list, change, remove) and the reindex operation.

Adding tags saves them as ``adding`` before the reindex starts; the index store reads the
definitions in each add's write transaction, so an instance stored meanwhile is either
indexed with the new tags or already committed when the reindex walks the index (see
docs/extended-query-tags.md).
The reindex walks the index records in pages (their header attributes are the stored
metadata) and adds the new tags' match keys; it writes no change-feed entries.
"""

from __future__ import annotations

import asyncio
from dataclasses import replace
from typing import Any, Protocol

from dicomweb.usecases.operations.steps import Call, Orchestration, Progress
from indexing.attributes import MATCH, Attribute, AttributeTable
from indexing.extended_tag_store import ExtendedTagStore, ReindexAssignedError
from indexing.extended_tags import (
    ExtendedTag,
    QueryStatus,
    TagStatus,
    parse_entries,
    parse_path,
    value_errors,
)
from indexing.port import InstanceRecord

TYPE = "reindex"
PAGE_SIZE = 200


class ExtendedIndex(Protocol):
    """What the registry and the reindex need of the index store."""

    async def reindex(self, records: list[InstanceRecord], table: AttributeTable) -> None: ...

    async def drop_values(self, tag: str) -> None: ...

    async def records_after(self, instance_key: str, limit: int) -> list[InstanceRecord]: ...


class TagNotFound(LookupError):
    pass


class ReindexRunning(RuntimeError):
    def __init__(self, operation_id: str) -> None:
        super().__init__(operation_id)
        self.operation_id = operation_id


class ExtendedQueryTags:
    def __init__(self, tags: ExtendedTagStore, index: ExtendedIndex) -> None:
        self.tags = tags
        self.index = index

    async def query_tags(self) -> list[ExtendedTag]:
        return await self.tags.all()

    async def add(self, body: Any, operation_id: str) -> list[ExtendedTag]:
        """Validate and save the new tags as ``adding``, assigned to ``operation_id`` (the
        reindex the caller starts next: assigned first, so its end cannot be overwritten)."""
        existing = await self.tags.all()
        running = next((tag.operation_id for tag in existing if tag.operation_id), None)
        if running:
            raise ReindexRunning(running)
        tags = [replace(tag, operation_id=operation_id) for tag in parse_entries(body, len(existing))]
        try:
            await self.tags.add(tags)  # committed: every add from now on indexes them (docs)
        except ReindexAssignedError as exc:  # another POST won the race
            raise ReindexRunning(exc.operation_id) from None
        return tags

    async def get(self, path: str) -> ExtendedTag:
        wanted = parse_path(path)
        found = next((tag for tag in await self.tags.all() if tag.path == wanted), None)
        if found is None:
            raise TagNotFound(path)
        return found

    async def errors(self, path: str, limit: int, offset: int) -> list[dict[str, str]]:
        return await self.tags.errors((await self.get(path)).path, limit, offset)

    async def set_query_status(self, path: str, status: QueryStatus) -> ExtendedTag:
        tag = replace(await self.get(path), query_status=status)
        await self.tags.save(tag)
        return tag

    async def remove(self, path: str) -> None:
        tag = await self.get(path)
        await self.tags.save(replace(tag, status=TagStatus.DELETING))
        # no longer indexed (adds read the definitions) nor searchable, then its keys go
        await self.index.drop_values(tag.path)
        await self.tags.remove(tag.path)


class ReindexTags:
    """The ``reindex`` operation kind (:mod:`dicomweb.usecases.operations.steps`)."""

    name = TYPE

    def __init__(self, registry: ExtendedQueryTags, settle_seconds: float = 0.0) -> None:
        self.registry = registry
        # Before the first page, the reindex waits this long. On an index whose reads may lag
        # its writes by a moment (Cosmos DB below Strong consistency), a STOW that read the
        # definitions just before the tag's commit became visible to it has written its
        # instance document before that read; the wait lets the walk see that document
        # (docs/extended-query-tags.md, "the race on Cosmos").
        self.settle_seconds = settle_seconds

    def orchestrate(self, operation_id: str, input: dict[str, Any]) -> Orchestration:
        after, done = input.get("after", ""), input.get("done", 0)
        while True:
            page = yield Call("page", {"paths": input["paths"], "after": after})
            done += page["count"]
            if page["next"] is None:
                break
            after = page["next"]
            yield Progress(50, {"reindexed": done}, {**input, "after": after, "done": done})
        yield Call("finish", {"paths": input["paths"]})
        return {"reindexed": done}

    async def run_activity(self, activity: str, input: dict[str, Any]) -> Any:
        if activity == "page":
            return await self._page(input["paths"], input["after"])
        if activity == "finish":
            return await self._finish(input["paths"])
        raise ValueError(f"unknown reindex activity {activity}")

    async def _page(self, paths: list[str], after: str) -> dict[str, Any]:
        if not after and self.settle_seconds > 0:
            await asyncio.sleep(self.settle_seconds)
        tags = [tag for tag in await self.registry.tags.all() if tag.path in paths]
        records = await self.registry.index.records_after(after, PAGE_SIZE)
        await self._record_errors(tags, records)
        await self.registry.index.reindex(records, _only(tags))
        last = records[-1].instance_key if len(records) == PAGE_SIZE else None
        return {"count": len(records), "next": last}

    async def _record_errors(self, tags: list[ExtendedTag], records: list[InstanceRecord]) -> None:
        """Record each instance whose value is invalid for a tag's VR; that tag's queryStatus
        becomes disabled. The value is still indexed as the built-ins index it (as text), so
        an operator who re-enables the tag gets what a built-in attribute would give."""
        for tag in tags:
            errors = [error for record in records for _, error in value_errors([tag], record)]
            if errors:
                await self.registry.tags.add_errors(tag.path, errors)
                await self.registry.tags.save(replace(tag, query_status=QueryStatus.DISABLED,
                                                      error_count=tag.error_count + len(errors)))

    async def _finish(self, paths: list[str]) -> None:
        for tag in await self.registry.tags.all():
            if tag.path in paths and tag.status is TagStatus.ADDING:
                await self.registry.tags.save(replace(tag, status=TagStatus.READY, operation_id=None))


def _only(tags: list[ExtendedTag]) -> AttributeTable:
    """A table of just ``tags`` (reindexing the built-ins again is useless work)."""
    return AttributeTable(Attribute(tag.keyword, tag.path, tag.vr, tag.level, MATCH) for tag in tags)
