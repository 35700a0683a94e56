"""Starting Durable orchestrations from the HTTP app: a message on a storage queue.

The Functions app's catch-all HTTP route (``AsgiFunctionApp``) swallows the Durable HTTP
starter, so the app enqueues ``{"operationId", "type"}`` and a queue trigger in
:mod:`dicomweb.durable` starts the orchestration with the operation id as its instance
id (a redelivered message finds the instance there and starts nothing). The queue lives
in the same storage account as the blobs, reached with the same connection string or
identity.
"""

from __future__ import annotations

import asyncio
import contextlib
import json

from azure.core.exceptions import ResourceExistsError
from azure.storage.queue import BinaryBase64DecodePolicy, BinaryBase64EncodePolicy
from azure.storage.queue.aio import QueueClient

from indexing.operation_store import OperationState


def start_message(state: OperationState) -> dict[str, str]:
    return {"operationId": state.operation_id, "type": state.type}


class QueueOperationStarter:
    def __init__(self, queue: str, *, connection_string: str = "", account_url: str = "") -> None:
        self.queue = queue
        self._connection_string = connection_string
        self._account_url = account_url
        self._clients: dict[asyncio.AbstractEventLoop, QueueClient] = {}

    async def _client(self) -> QueueClient:
        loop = asyncio.get_running_loop()
        client = self._clients.get(loop)
        if client is None:
            if not self._connection_string and not self._account_url:
                raise ValueError("the operations queue needs a storage connection string or an account URL")
            # The Functions queue trigger expects base64 message text (its default encoding).
            encode, decode = BinaryBase64EncodePolicy(), BinaryBase64DecodePolicy()
            if self._connection_string:
                client = QueueClient.from_connection_string(self._connection_string, self.queue,
                                                            message_encode_policy=encode, message_decode_policy=decode)
            else:
                from azure.identity.aio import DefaultAzureCredential

                client = QueueClient(self._account_url, self.queue, credential=DefaultAzureCredential(),
                                     message_encode_policy=encode, message_decode_policy=decode)
            with contextlib.suppress(ResourceExistsError):
                await client.create_queue()
            self._clients[loop] = client
        return client

    async def start(self, state: OperationState) -> None:
        client = await self._client()
        await client.send_message(json.dumps(start_message(state)).encode())

    async def close(self) -> None:
        client = self._clients.pop(asyncio.get_running_loop(), None)
        if client is not None:
            await client.close()
