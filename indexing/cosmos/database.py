"""Reaching Cosmos DB (NoSQL API): one async client per event loop, containers made on first use.

The index and the change feed each hold a :class:`CosmosDatabase`. The async client
(aiohttp) belongs to the loop that opened it, and the app builds its adapters before any
loop runs, so the client is opened lazily in the running loop; a second loop (a test
calling ``asyncio.run``, a worker thread with its own loop) gets its own client.
Containers are created if missing with the definitions their store gives
(:class:`ContainerSpec`): the same definitions infra/ deploys.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from azure.cosmos import PartitionKey
from azure.cosmos.aio import ContainerProxy, CosmosClient, DatabaseProxy
from azure.cosmos.exceptions import CosmosResourceExistsError


@dataclass(frozen=True)
class ContainerSpec:
    """A container's definition: name, partition key path, unique keys, indexing policy."""

    name: str
    partition_key: str
    indexing_policy: dict[str, Any]
    unique_keys: tuple[str, ...] = ()
    default_ttl: int | None = None

    def unique_key_policy(self) -> dict[str, Any] | None:
        if not self.unique_keys:
            return None
        return {"uniqueKeys": [{"paths": [path]} for path in self.unique_keys]}

    def to_json(self) -> dict[str, Any]:
        """The container as a Cosmos resource definition (what infra/ deploys)."""
        resource: dict[str, Any] = {
            "id": self.name,
            "partitionKey": {"paths": [self.partition_key], "kind": "Hash"},
            "indexingPolicy": self.indexing_policy,
        }
        if self.unique_keys:
            resource["uniqueKeyPolicy"] = self.unique_key_policy()
        if self.default_ttl is not None:
            resource["defaultTtl"] = self.default_ttl
        return resource


@dataclass
class _Opened:
    client: CosmosClient
    database: DatabaseProxy
    containers: dict[str, ContainerProxy] = field(default_factory=dict)


class CosmosDatabase:
    """A database on ``endpoint``, with ``key`` or (no key) azure-identity's DefaultAzureCredential."""

    def __init__(self, endpoint: str, key: str, database: str, specs: list[ContainerSpec],
                 client_options: dict[str, Any] | None = None) -> None:
        if not endpoint:
            raise ValueError("the Cosmos stores need DICOMWEB_COSMOS_ENDPOINT")
        self.endpoint = endpoint
        self.key = key
        self.database_name = database
        self.client_options = client_options or {}
        """Extra CosmosClient options (e.g. a ``raw_response_hook`` counting calls)."""
        self.specs = {spec.name: spec for spec in specs}
        self._opened: dict[asyncio.AbstractEventLoop, _Opened] = {}
        self._credentials: list[Any] = []
        self._lock: dict[asyncio.AbstractEventLoop, asyncio.Lock] = {}

    async def container(self, name: str) -> ContainerProxy:
        loop = asyncio.get_running_loop()
        opened = self._opened.get(loop)
        if opened is None or name not in opened.containers:
            async with self._lock.setdefault(loop, asyncio.Lock()):
                opened = await self._open(loop)
                if name not in opened.containers:
                    opened.containers[name] = await self._create(opened.database, self.specs[name])
        return opened.containers[name]

    async def _open(self, loop: asyncio.AbstractEventLoop) -> _Opened:
        opened = self._opened.get(loop)
        if opened is not None:
            return opened
        credential: Any = self.key
        if not credential:
            from azure.identity.aio import DefaultAzureCredential

            credential = DefaultAzureCredential()
            self._credentials.append(credential)
        client = CosmosClient(self.endpoint, credential, **self.client_options)
        try:
            await client.__aenter__()  # reads the account (regions, consistency) once
            try:
                database = await client.create_database_if_not_exists(self.database_name)
            except CosmosResourceExistsError:  # created by another process between the SDK's read and create
                database = client.get_database_client(self.database_name)
        except BaseException:  # failed or cancelled (a QIDO past its time budget): leave no session open
            await client.close()
            raise
        opened = self._opened[loop] = _Opened(client, database)
        return opened

    @staticmethod
    async def _create(database: DatabaseProxy, spec: ContainerSpec) -> ContainerProxy:
        try:
            return await database.create_container_if_not_exists(
                spec.name,
                PartitionKey(spec.partition_key),
                indexing_policy=spec.indexing_policy,
                unique_key_policy=spec.unique_key_policy(),
                default_ttl=spec.default_ttl,
            )
        except CosmosResourceExistsError:  # created by another process between the SDK's read and create
            return database.get_container_client(spec.name)

    async def close(self) -> None:
        """Close this loop's client (each thread with its own loop closes its own)."""
        loop = asyncio.get_running_loop()
        opened = self._opened.pop(loop, None)
        self._lock.pop(loop, None)
        if opened is not None:
            await opened.client.close()
        for finished in [other for other in self._opened if other.is_closed()]:
            del self._opened[finished]  # its loop is gone: nothing left to close it with
        if not self._opened:
            credentials, self._credentials = self._credentials, []
            for credential in credentials:
                await credential.close()
