"""Extended query tags below HTTP, on every adapter (SQLite; Cosmos DB): the definition
store's rules (atomic add, clash, a running reindex, the 128 limit, errors in order and
paged), and the index store's reindex and drop at every level."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from indexing.attributes import Level
from indexing.extended_tag_store import ExtendedTagExistsError, ExtendedTagStore, ReindexAssignedError
from indexing.extended_tags import MAX_TAGS, ExtendedTag, ExtendedTagError, TagStatus, extend_table
from indexing.port import IndexStore
from indexing.query import parse_query
from tests.contract.test_index_store_contract import make_store, record

pytestmark = pytest.mark.anyio

STUDY = "1.2.826.0.1.3680043.8.498.1404"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(params=["sqlite", "cosmos"])
async def stores(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[tuple[IndexStore, ExtendedTagStore]]:
    index = make_store(request.param, tmp_path, request)
    tags: Any
    if request.param == "sqlite":
        from indexing.sqlite.extended_tag_store import SqliteExtendedTagStore

        tags = SqliteExtendedTagStore(index._database)  # type: ignore[attr-defined]
    else:
        from indexing.cosmos.containers import containers
        from indexing.cosmos.database import CosmosDatabase
        from indexing.cosmos.extended_tag_store import CosmosExtendedTagStore

        database = index._database.database_name  # type: ignore[attr-defined]
        server = request.getfixturevalue("cosmos_server")
        tags = CosmosExtendedTagStore(CosmosDatabase(server.endpoint, server.key, database, containers()))
    yield index, tags
    await tags.close()
    await index.close()


def _private(number: int) -> ExtendedTag:
    return ExtendedTag(f"0009{0x1000 + number:04X}", "LO", Level.STUDY, "ACME")


async def test_definitions_add_atomically_and_keep_the_rules(stores: tuple[IndexStore, ExtendedTagStore]) -> None:
    _, tags = stores
    weight = ExtendedTag("00101030", "DS", Level.STUDY, operation_id="op-1")
    await tags.add([weight])
    with pytest.raises(ReindexAssignedError) as running:
        await tags.add([_private(1)])
    assert running.value.operation_id == "op-1"
    await tags.save(replace(weight, status=TagStatus.READY, operation_id=None))
    with pytest.raises(ExtendedTagExistsError):
        await tags.add([_private(1), replace(weight, status=TagStatus.ADDING)])
    assert [tag.path for tag in await tags.all()] == ["00101030"]  # all or none
    await tags.add([_private(number) for number in range(MAX_TAGS - 1)])
    with pytest.raises(ExtendedTagError, match="at most 128"):
        await tags.add([_private(MAX_TAGS)])
    assert len(await tags.all()) == MAX_TAGS
    await tags.remove("00101030")
    assert len(await tags.all()) == MAX_TAGS - 1


async def test_errors_are_kept_in_order_and_paged(stores: tuple[IndexStore, ExtendedTagStore]) -> None:
    _, tags = stores
    await tags.add([_private(1)])
    errors = [{"studyInstanceUid": STUDY, "seriesInstanceUid": "1.2.3", "sopInstanceUid": f"1.2.3.{n}",
               "createdTime": "2026-01-01T00:00:00Z", "errorMessage": "a value is too long"} for n in range(5)]
    await tags.add_errors(_private(1).path, errors[:3])
    await tags.add_errors(_private(1).path, errors[3:])
    assert await tags.errors(_private(1).path, 100, 0) == errors
    assert await tags.errors(_private(1).path, 2, 2) == errors[2:4]
    assert await tags.errors(_private(1).path, 2, 5) == []
    await tags.remove(_private(1).path)
    assert await tags.errors(_private(1).path, 100, 0) == []


async def test_reindex_and_drop_at_every_level(stores: tuple[IndexStore, ExtendedTagStore]) -> None:
    index, _ = stores
    records = [record(study=STUDY, series=f"{STUDY}.{series}", instance_number=number, PatientWeight=weight,
                      DeviceSerialNumber=f"SN-{series}", SliceThickness=str(number))
               for series, weight in ((1, "70"), (2, "70")) for number in (1, 2)]
    for each in records:
        await index.add_instance(each)
    tags = [ExtendedTag("00101030", "DS", Level.STUDY, status=TagStatus.READY),
            ExtendedTag("00181000", "LO", Level.SERIES, status=TagStatus.READY),
            ExtendedTag("00180050", "DS", Level.INSTANCE, status=TagStatus.READY)]
    table = extend_table(tags, searchable_only=True)

    async def found(level: Level, key: str, value: str) -> int:
        return len(await index.search(parse_query(level, [(key, value)], table=table)))

    assert await found(Level.INSTANCE, "SliceThickness", "1") == 0  # not indexed before the reindex
    await index.reindex(records[:3], extend_table(tags))  # type: ignore[attr-defined]
    await index.reindex(records[3:], extend_table(tags))  # type: ignore[attr-defined]
    assert await found(Level.STUDY, "PatientWeight", "70.0") == 1
    assert await found(Level.SERIES, "PatientWeight", "70") == 2  # a study-level tag filters series
    assert await found(Level.INSTANCE, "PatientWeight", "70") == 4  # and instances
    assert await found(Level.SERIES, "DeviceSerialNumber", "SN-2") == 1
    assert await found(Level.INSTANCE, "DeviceSerialNumber", "SN-1") == 2
    assert await found(Level.INSTANCE, "SliceThickness", "1.0") == 2
    await index.drop_values("00180050")  # type: ignore[attr-defined]
    assert await found(Level.INSTANCE, "SliceThickness", "1") == 0
    assert await found(Level.INSTANCE, "DeviceSerialNumber", "SN-1") == 2  # other tags keep theirs
