"""Operation state in Cosmos DB: the ``operations`` container, one partition per operation.

A state document (``kind = "operation"``, id = the operation id) holds the state's JSON
body; a cancel request is a document of its own (``kind = "cancel"``, id
``cancel-{operation id}``), so a runner replacing the state document cannot lose it.

Lists are read whole and sorted here: operations are few (one per import or reindex a
user starts) and an ``ORDER BY`` over two fields with ``OFFSET`` would need a composite
index, which the Cosmos test server does not implement.
"""

from __future__ import annotations

from typing import Any

from azure.cosmos.exceptions import CosmosResourceExistsError, CosmosResourceNotFoundError

from indexing.cosmos.database import ContainerSpec, CosmosDatabase
from indexing.operation_store import OperationState, Status

CONTAINER = ContainerSpec(
    name="operations",
    partition_key="/id",
    indexing_policy={
        "indexingMode": "consistent",
        "automatic": True,
        "includedPaths": [{"path": "/kind/?"}, {"path": "/status/?"}, {"path": "/type/?"}],
        "excludedPaths": [{"path": "/*"}],
    },
)


def _cancel_id(operation_id: str) -> str:
    return f"cancel-{operation_id}"


def _document(state: OperationState) -> dict[str, Any]:
    return {"id": state.operation_id, "kind": "operation", "status": state.status.value, "type": state.type,
            "body": state.to_json()}


class CosmosOperationStore:
    def __init__(self, database: CosmosDatabase) -> None:
        self.database = database

    async def _container(self) -> Any:
        return await self.database.container(CONTAINER.name)

    async def create(self, state: OperationState) -> None:
        try:
            await (await self._container()).create_item(_document(state))
        except CosmosResourceExistsError as exc:
            raise FileExistsError(state.operation_id) from exc

    async def _read(self, item: str) -> dict[str, Any] | None:
        try:
            document: dict[str, Any] = await (await self._container()).read_item(item, partition_key=item)
            return document
        except CosmosResourceNotFoundError:
            return None

    async def get(self, operation_id: str) -> OperationState | None:
        document = await self._read(operation_id)
        return None if document is None else OperationState.from_json(document["body"])

    async def save(self, state: OperationState) -> None:
        await (await self._container()).upsert_item(_document(state))

    async def _query(self, where: str, parameters: dict[str, Any]) -> list[OperationState]:
        items = (await self._container()).query_items(
            f"SELECT * FROM c WHERE c.kind = 'operation'{where}",
            parameters=[{"name": name, "value": value} for name, value in parameters.items()])
        return [OperationState.from_json(document["body"]) async for document in items]

    async def recent(self, *, status: Status | None = None, type: str | None = None,
                   limit: int = 100, offset: int = 0) -> list[OperationState]:
        where, parameters = "", dict[str, Any]()
        if status is not None:
            where += " AND c.status = @status"
            parameters["@status"] = status.value
        if type is not None:
            where += " AND c.type = @type"
            parameters["@type"] = type
        states = await self._query(where, parameters)
        states.sort(key=lambda state: (state.created_time, state.operation_id), reverse=True)
        return states[offset:offset + limit]

    async def unfinished(self) -> list[OperationState]:
        states = [state for state in await self._query("", {}) if not state.status.terminal]
        return sorted(states, key=lambda state: (state.created_time, state.operation_id))

    async def request_cancel(self, operation_id: str) -> None:
        await (await self._container()).upsert_item({"id": _cancel_id(operation_id), "kind": "cancel"})

    async def cancel_requested(self, operation_id: str) -> bool:
        return await self._read(_cancel_id(operation_id)) is not None

    async def close(self) -> None:
        await self.database.close()
