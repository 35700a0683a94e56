"""Extended query tag definitions in Cosmos DB: the ``extendedtags`` container.

All the definitions are **one document** (id ``definitions``): at most 128 small entries
(a few hundred bytes each), far below a document's 2 MB. Every change is a
read-modify-replace with the document's ETag (``IfNotModified``), retried on 412, and the
first write is a create (409 when another writer was first). So a change is atomic, two
POSTs racing for the same tag cannot both succeed (the second replace fails its
precondition and, read again, finds the tag), and the 128 limit and the "a reindex is
running" rule are checked on the very document that is written: they hold under races,
which a check-then-insert over several documents would not give without transactions
(the Cosmos test server has no transactional batch).

Errors are documents of their own, one partition per tag (``pk`` = the tag path, id =
the SOP Instance UID, so recording one again replaces it), ordered by ``seq`` (the time
recorded plus a counter); ``offset`` is skipped by keyset, as the index store does
(no OFFSET/LIMIT on the test server).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import Callable
from typing import Any

from azure.core import MatchConditions
from azure.cosmos.exceptions import (
    CosmosAccessConditionFailedError,
    CosmosResourceExistsError,
    CosmosResourceNotFoundError,
)

from dicomcore.clock import utc_now
from indexing.cosmos.database import ContainerSpec, CosmosDatabase
from indexing.extended_tag_store import check_can_add
from indexing.extended_tags import ExtendedTag

CONTAINER = ContainerSpec(
    name="extendedtags",
    partition_key="/pk",
    indexing_policy={
        "indexingMode": "consistent",
        "automatic": True,
        "includedPaths": [{"path": "/pk/?"}, {"path": "/seq/?"}],
        "excludedPaths": [{"path": "/*"}],
    },
)

DEFINITIONS = "definitions"
_RETRIES = 100
"""ETag retries before giving up; each retry means another writer changed the definitions."""
_PARALLEL = 16
"""Error documents written at once (a reindex page may record one per instance)."""
_sequence = itertools.count()


class CosmosExtendedTagStore:
    def __init__(self, database: CosmosDatabase) -> None:
        self.database = database

    async def _container(self) -> Any:
        return await self.database.container(CONTAINER.name)

    async def _read_definitions(self) -> dict[str, Any] | None:
        try:
            document: dict[str, Any] = await (await self._container()).read_item(DEFINITIONS, partition_key=DEFINITIONS)
            return document
        except CosmosResourceNotFoundError:
            return None

    async def all(self) -> list[ExtendedTag]:
        document = await self._read_definitions()
        tags = [ExtendedTag.from_json(body) for body in (document or {}).get("tags", [])]
        return sorted(tags, key=lambda tag: tag.path)

    async def _change(self, change: Callable[[list[ExtendedTag]], list[ExtendedTag] | None]) -> None:
        """Apply ``change`` to the definitions as one conditional write (``None``: nothing to write)."""
        container = await self._container()
        for _ in range(_RETRIES):
            document = await self._read_definitions()
            current = [ExtendedTag.from_json(body) for body in (document or {}).get("tags", [])]
            changed = change(current)
            if changed is None:
                return
            body = {"id": DEFINITIONS, "pk": DEFINITIONS, "tags": [tag.to_json() for tag in changed]}
            try:
                if document is None:
                    await container.create_item(body)
                else:
                    await container.replace_item(DEFINITIONS, body, etag=document["_etag"],
                                                 match_condition=MatchConditions.IfNotModified)
                return
            except (CosmosAccessConditionFailedError, CosmosResourceExistsError, CosmosResourceNotFoundError):
                continue  # another writer changed them first: read again, check again
        raise RuntimeError(f"the extended query tag definitions kept changing; gave up after {_RETRIES} tries")

    async def add(self, tags: list[ExtendedTag]) -> None:
        def added(current: list[ExtendedTag]) -> list[ExtendedTag]:
            check_can_add(current, tags)
            return [*current, *tags]

        await self._change(added)

    async def save(self, tag: ExtendedTag) -> None:
        def saved(current: list[ExtendedTag]) -> list[ExtendedTag] | None:
            if not any(existing.path == tag.path for existing in current):
                return None
            return [tag if existing.path == tag.path else existing for existing in current]

        await self._change(saved)

    async def remove(self, path: str) -> None:
        container = await self._container()
        items = container.query_items("SELECT VALUE c.id FROM c WHERE c.pk = @path",
                                      parameters=[{"name": "@path", "value": path}], partition_key=path)
        for item in [item async for item in items]:
            with contextlib.suppress(CosmosResourceNotFoundError):
                await container.delete_item(item, partition_key=path)

        def removed(current: list[ExtendedTag]) -> list[ExtendedTag] | None:
            left = [tag for tag in current if tag.path != path]
            return left if len(left) != len(current) else None

        await self._change(removed)

    async def add_errors(self, path: str, errors: list[dict[str, str]]) -> None:
        container = await self._container()
        now = utc_now()
        gate = asyncio.Semaphore(_PARALLEL)

        async def upsert(error: dict[str, str]) -> None:
            async with gate:
                await container.upsert_item({"id": error["sopInstanceUid"], "pk": path,
                                             "seq": f"{now}|{next(_sequence):012d}", "error": error})

        await asyncio.gather(*(upsert(error) for error in errors))

    async def errors(self, path: str, limit: int, offset: int) -> list[dict[str, str]]:
        container = await self._container()
        where, parameters = "c.pk = @path", [{"name": "@path", "value": path}]
        if offset > 0:
            skipped = [seq async for seq in container.query_items(
                f"SELECT TOP {int(offset)} VALUE c.seq FROM c WHERE {where} ORDER BY c.seq",
                parameters=parameters, partition_key=path)]
            if len(skipped) < offset:
                return []
            where += " AND c.seq > @last"
            parameters = [*parameters, {"name": "@last", "value": skipped[-1]}]
        return [item async for item in container.query_items(
            f"SELECT TOP {int(limit)} VALUE c.error FROM c WHERE {where} ORDER BY c.seq",
            parameters=parameters, partition_key=path)]

    async def close(self) -> None:
        await self.database.close()

