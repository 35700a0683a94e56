"""Starting a Durable orchestration from the HTTP app: the start message on a storage queue
(Azurite's queue service), base64-encoded as the Functions queue trigger expects."""

from __future__ import annotations

import asyncio
import base64
import json
import os
from collections.abc import Iterator

import pytest
from azure.storage.queue import QueueClient

from dicomweb.storage.azure_queue import QueueOperationStarter
from indexing.operation_store import OperationState, Status
from tests.support.emulators import AzuriteQueues, missing_tools, start_azurite_queues


@pytest.fixture(scope="module")
def queues() -> Iterator[AzuriteQueues]:
    reason = missing_tools()
    if reason:
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(f"Azurite needs node and npm: {reason}", pytrace=False)
        pytest.skip(reason)
    emulator = start_azurite_queues()
    yield emulator
    emulator.stop()


def test_start_puts_the_operation_on_the_queue(queues: AzuriteQueues) -> None:
    state = OperationState("a" * 32, "import", Status.NOT_STARTED, "2026-01-01T00:00:00Z", "2026-01-01T00:00:00Z")

    async def start() -> None:
        starter = QueueOperationStarter("ops-test", connection_string=queues.connection_string)
        await starter.start(state)
        await starter.close()

    asyncio.run(start())
    with QueueClient.from_connection_string(queues.connection_string, "ops-test") as queue:
        (message,) = list(queue.receive_messages())
    assert json.loads(base64.b64decode(message.content)) == {"operationId": "a" * 32, "type": "import"}
