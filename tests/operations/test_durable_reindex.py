"""The ``reindex`` operation under the Durable orchestrator in Azure mode (Azurite, the Cosmos
test server): the tag is added over HTTP, and
the orchestration is driven as in test_durable_orchestrator.py, its activities running for
real against Cosmos, in pages, checkpointed."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from azure.durable_functions.testing import orchestrator_generator_wrapper
from starlette.testclient import TestClient

from dicomweb import durable
from dicomweb.api.context import Services
from dicomweb.app import create_app
from dicomweb.composition import build_services
from dicomweb.settings import Settings
from dicomweb.usecases import extended_query_tags
from dicomweb.usecases.operations.lifecycle import Bookkeeping
from tests.operations.test_durable_orchestrator import Context, NoStart
from tests.support.builders import make_dataset, multipart_body, to_bytes
from tests.support.emulators import Azurite, CosmosServer

STUDY = "1.2.826.0.1.3680043.8.498.1403"
INSTANCES = 5


@pytest.fixture
def services(tmp_path: Path, azurite: Azurite, cosmos_server: CosmosServer,
             monkeypatch: pytest.MonkeyPatch) -> Iterator[Services]:
    monkeypatch.setattr(extended_query_tags, "PAGE_SIZE", 2)  # 3 pages, 2 checkpoints
    fresh = uuid.uuid4().hex[:16]
    settings = Settings(
        data_dir=tmp_path / "data", allowed_hosts=("testserver",), operations_runner="durable",
        blob_store="azure", blob_connection_string=azurite.connection_string, blob_container=f"durable-{fresh}",
        index_store="cosmos", cosmos_endpoint=cosmos_server.endpoint, cosmos_key=cosmos_server.key,
        cosmos_database=f"durable-{fresh}")
    wired = build_services(settings)
    # The orchestration is driven by the test; the queue message that starts it in Azure is
    # test_function_app.py's subject (and Azurite's blob endpoint has no queue service).
    wired.operation_starter = NoStart()
    yield wired


def test_reindex_runs_under_durable_on_cosmos(services: Services) -> None:
    with TestClient(create_app(services.settings, services), base_url="http://testserver") as client:
        stored = []
        for number in range(1, INSTANCES + 1):
            ds = make_dataset(study=STUDY, instance_number=number)
            ds.SliceThickness = "2.5"
            body, content_type = multipart_body([to_bytes(ds)])
            assert client.post("/v1/studies", content=body, headers={"Content-Type": content_type}).status_code == 200
            stored.append(ds.SOPInstanceUID)
        started = client.post("/v1/extendedquerytags", json=[{"path": "SliceThickness", "level": "instance"}])
        assert started.status_code == 202, started.text
        operation_id = started.json()["id"]
        assert client.get("/v1/instances?SliceThickness=2.5").status_code == 400  # not ready: nobody ran it

        loop = asyncio.new_event_loop()  # the activities' own loop, as a Functions worker has
        try:
            generation = _drive(services, loop, operation_id)
            assert services.extended_tags is not None
            for store in (services.index, services.operations, services.extended_tags.tags):
                loop.run_until_complete(store.close())  # this loop's Cosmos clients
        finally:
            loop.close()

        assert "reindex" in services.operation_kinds  # the runner knows the kind in Azure mode
        pages = [call for call in generation.calls if call.get("activity") == "page"]
        checkpoints = [call for call in generation.calls if call.get("bookkeeping") == "progress"]
        assert len(pages) == 3 and len(checkpoints) == 2
        state = client.get(f"/v1/operations/{operation_id}").json()
        assert state["status"] == "succeeded" and state["results"] == {"reindexed": INSTANCES}, state
        assert client.get("/v1/extendedquerytags/SliceThickness").json()["status"] == "ready"
        found = client.get("/v1/instances?SliceThickness=2.5")
        assert found.status_code == 200 and sorted(i["00080018"]["Value"][0] for i in found.json()) == sorted(stored)


def _drive(services: Services, loop: asyncio.AbstractEventLoop, operation_id: str) -> Context:
    bookkeeping = Bookkeeping(services.operations)

    def run(request: dict[str, Any]) -> Any:
        return loop.run_until_complete(bookkeeping.run(services.operation_kinds, request))

    context = Context({"operationId": operation_id, "type": extended_query_tags.TYPE}, run)
    list(orchestrator_generator_wrapper(durable.orchestrate(context, services.operation_kinds)))
    assert context.next_input is None  # one generation
    return context
