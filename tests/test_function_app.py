"""The Azure Functions adapter, without the Functions host: the functions it declares (what
the host reads at indexing) and the blob trigger's code, called the way the worker calls it
for an Event Grid blob event, against Azurite and the Cosmos test server."""

from __future__ import annotations

import asyncio
import importlib
import json
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType, SimpleNamespace
from typing import Any

import azure.functions as func
import azurefunctions.extensions.bindings.blob as blob_sdk
import pytest
from azurefunctions.extensions.base import Datum
from azurefunctions.extensions.base.utils import get_raw_bindings

from dicomcore import layout
from dicomweb.composition import build_services
from dicomweb.settings import Settings
from dicomweb.usecases.blob_created import Outcome
from tests.support.blob_drops import drop, event_grid_event
from tests.support.builders import make_dataset, to_bytes
from tests.support.emulators import Azurite, CosmosServer

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def function_app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ModuleType]:
    """``function_app`` imported once, with its embedded defaults pointed at a scratch folder."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DICOMWEB_DATA_DIR", str(tmp_path_factory.mktemp("function-app")))
        patch.syspath_prepend(str(ROOT))
        sys.modules.pop("function_app", None)
        yield importlib.import_module("function_app")


@pytest.fixture(scope="module")
def functions(function_app: ModuleType) -> dict[str, Any]:
    # get_functions() builds the functions once; a second call fails.
    return {function.get_function_name(): function for function in function_app.app.get_functions()}


def bindings(function: Any) -> list[dict[str, Any]]:
    return json.loads(function.get_function_json())["bindings"]


def test_operations_run_as_durable_functions_started_from_a_queue(functions: dict[str, Any]) -> None:
    def trigger(name: str) -> dict[str, Any]:
        (found,) = [b for b in bindings(functions[name]) if b["type"].endswith("Trigger")]
        return found

    assert trigger("operation_orchestrator")["type"] == "orchestrationTrigger"
    assert trigger("operation_activity")["type"] == "activityTrigger"
    queue = trigger("start_operation")
    assert queue["type"] == "queueTrigger" and queue["queueName"] == "dicomweb-operations"
    assert queue["connection"] == "DICOMWEB_BLOB_CONNECTION_STRING"
    assert any(b["type"] == "durableClient" for b in bindings(functions["start_operation"]))


def test_a_queued_start_message_starts_the_orchestration_once(functions: dict[str, Any]) -> None:
    # The SDK wraps the function to build the client from the host's JSON; call what it wraps.
    start = functions["start_operation"].get_user_function().__wrapped__
    message = func.QueueMessage(body=json.dumps({"operationId": "b" * 32, "type": "import"}).encode())

    class Client:
        def __init__(self) -> None:
            self.started: list[tuple[str, str | None, Any]] = []

        async def get_status(self, instance_id: str) -> Any:
            return SimpleNamespace(runtime_status="Running" if self.started else None)

        async def start_new(self, name: str, instance_id: str | None = None, client_input: Any = None) -> str:
            self.started.append((name, instance_id, client_input))
            return instance_id or ""

    client = Client()
    asyncio.run(start(message, client))
    asyncio.run(start(message, client))  # redelivered: the instance exists, nothing more starts
    assert client.started == [("operation_orchestrator", "b" * 32, {"operationId": "b" * 32, "type": "import"})]


def test_the_http_function_serves_the_service_root_only(functions: dict[str, Any]) -> None:
    (http_function,) = [f for f in functions.values() if bindings(f)[0]["type"] == "httpTrigger"]
    trigger, output = bindings(http_function)
    assert trigger["route"] == "/{*route}" and trigger["authLevel"] == "ANONYMOUS"
    assert {"GET", "POST", "DELETE", "OPTIONS"} <= set(trigger["methods"])
    assert output["type"] == "http"
    # The catch-all sits under /v1, never over the host's /admin and /runtime/webhooks routes.
    assert json.loads((ROOT / "host.json").read_text())["extensions"]["http"]["routePrefix"] == "v1"


def test_the_blob_trigger_takes_event_grid_events_for_the_container(functions: dict[str, Any]) -> None:
    (trigger,) = bindings(functions["blob_created"])
    assert trigger["type"] == "blobTrigger" and trigger["direction"] == "IN"
    assert trigger["source"] == "EventGrid"
    assert trigger["path"] == "%DICOMWEB_BLOB_CONTAINER%/{name}"
    assert trigger["connection"] == "DICOMWEB_BLOB_CONNECTION_STRING"
    sample = json.loads((ROOT / "local.settings.json.sample").read_text())["Values"]
    assert {"DICOMWEB_BLOB_CONTAINER", "DICOMWEB_BLOB_CONNECTION_STRING"} <= set(sample)


def test_the_blob_trigger_binds_a_client_not_the_blobs_content(functions: dict[str, Any]) -> None:
    """The worker marks the binding deferred when the parameter is an SDK type: the host
    then sends the blob's name, never its (maybe multi-GB) content."""
    function = functions["blob_created"]
    annotation = function.get_user_function().__annotations__["blob"]
    assert annotation is blob_sdk.BlobClient
    raw, _ = get_raw_bindings(function, {"blob": SimpleNamespace(pytype=annotation)})
    assert json.loads(raw[0])["properties"] == {"SupportsDeferredBinding": True}


def _bound_client(container: str, name: str) -> Any:
    """The BlobClient the worker passes: decoded from the host's model binding data."""
    content = json.dumps({"Connection": "DICOMWEB_BLOB_CONNECTION_STRING", "ContainerName": container,
                          "BlobName": name})
    value = SimpleNamespace(version="1.0", source="AzureStorageBlobs", content_type="application/json", content=content)
    return blob_sdk.BlobClientConverter.decode(
        Datum(value, "model_binding_data"), trigger_metadata={}, pytype=blob_sdk.BlobClient)


def test_the_blob_trigger_imports_a_dropped_file_once(
    function_app: ModuleType, azurite: Azurite, cosmos_server: CosmosServer, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fresh = uuid.uuid4().hex[:16]
    settings = Settings(
        data_dir=tmp_path, ingest_scan_seconds=0, blob_store="azure", blob_container=f"fn-{fresh}",
        blob_connection_string=azurite.connection_string, index_store="cosmos",
        cosmos_endpoint=cosmos_server.endpoint, cosmos_key=cosmos_server.key, cosmos_database=f"fn-{fresh}",
    )
    monkeypatch.setenv("DICOMWEB_BLOB_CONNECTION_STRING", azurite.connection_string)
    ds = make_dataset(patient_id="FN-1")
    raw = to_bytes(ds)
    drop(settings, "incoming/upload.dcm", raw)
    key = layout.instance_key(ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID)

    async def run() -> tuple[Any, list[Any], Outcome]:
        services = build_services(settings)
        monkeypatch.setattr(function_app, "services", services)
        trigger = function_app.blob_created
        try:
            await asyncio.gather(*(trigger(_bound_client(settings.blob_container, "incoming/upload.dcm"))
                                   for _ in range(3)))
            await trigger(_bound_client(settings.blob_container, "incoming/upload.dcm"))  # late: already moved
            stored_event = event_grid_event(settings, layout.file_name(key), len(raw))
            return (await services.index.get_instance_by_key(key), await services.feed.read(0, 10),
                    await services.blob_created.handle_event(stored_event))
        finally:
            await services.close()

    record, feed, copy_event = asyncio.run(run())
    assert record is not None and record.sop_uid == ds.SOPInstanceUID
    assert [entry.sop_uid for entry in feed] == [ds.SOPInstanceUID]
    assert copy_event is Outcome.ALREADY_INDEXED  # the event for the moved-in copy finds it indexed
