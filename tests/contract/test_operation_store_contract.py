"""The operation store port's contract, run against every adapter (SQLite; Cosmos DB)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from indexing.operation_store import OperationState, OperationStore, Status

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(params=["sqlite", "cosmos"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[OperationStore]:
    if request.param == "sqlite":
        from indexing.sqlite.operation_store import SqliteOperationStore

        operations: OperationStore = SqliteOperationStore(tmp_path / "index.sqlite")
    else:
        from indexing.cosmos.containers import containers
        from indexing.cosmos.database import CosmosDatabase
        from indexing.cosmos.operation_store import CosmosOperationStore

        server = request.getfixturevalue("cosmos_server")
        operations = CosmosOperationStore(CosmosDatabase(server.endpoint, server.key,
                                                         f"contract-{uuid.uuid4().hex[:12]}", containers()))
    yield operations
    await operations.close()


def operation(created: str, type: str = "import", status: Status = Status.NOT_STARTED) -> OperationState:
    return OperationState(uuid.uuid4().hex, type, status, created, created, input={"prefix": "a/"})


async def test_create_get_and_save(store: OperationStore) -> None:
    state = operation("2026-01-01T00:00:00.000000Z")
    await store.create(state)
    assert await store.get(state.operation_id) == state
    assert await store.get(uuid.uuid4().hex) is None
    with pytest.raises(FileExistsError):
        await store.create(state)
    running = state.with_(status=Status.RUNNING, percent_complete=40, results={"imported": 4},
                          checkpoint={"cursor": "a/4.dcm"})
    await store.save(running)
    assert await store.get(state.operation_id) == running


async def test_recent_is_newest_first_with_filters_and_paging(store: OperationStore) -> None:
    states = [operation(f"2026-01-0{day}T00:00:00.000000Z", type=type, status=status) for day, type, status in [
        (1, "import", Status.SUCCEEDED), (2, "reindex", Status.RUNNING), (3, "import", Status.RUNNING)]]
    for state in states:
        await store.create(state)
        await store.save(state)
    ids = [state.operation_id for state in states]
    assert [s.operation_id for s in await store.recent()] == ids[::-1]
    assert [s.operation_id for s in await store.recent(limit=1, offset=1)] == [ids[1]]
    assert [s.operation_id for s in await store.recent(status=Status.RUNNING, type="import")] == [ids[2]]
    assert [s.operation_id for s in await store.unfinished()] == ids[1:]  # oldest first


async def test_a_cancel_request_survives_a_save(store: OperationStore) -> None:
    state = operation("2026-01-01T00:00:00.000000Z")
    await store.create(state)
    assert not await store.cancel_requested(state.operation_id)
    await store.request_cancel(state.operation_id)
    await store.save(state.with_(status=Status.RUNNING, percent_complete=10))
    assert await store.cancel_requested(state.operation_id)
