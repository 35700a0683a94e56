"""The Azure Functions adapter, without the Functions host: the functions it declares (what
the host reads at indexing), the HTTP function driven through the real ``azure.functions``
ASGI adapter the way the worker calls it, and the queue trigger fed an Event Grid event,
against Azurite and the Cosmos test server. Results are compared with the embedded server's."""

from __future__ import annotations

import asyncio
import importlib
import json
import sys
import uuid
from collections.abc import Coroutine, Iterator
from pathlib import Path
from types import ModuleType, SimpleNamespace
from typing import Any, TypeVar

import azure.functions as func
import pytest
from starlette.testclient import TestClient

from dicomcore import layout
from dicomweb.app import create_app
from dicomweb.settings import Settings
from tests.support.blob_drops import drop, event_grid_event
from tests.support.builders import make_dataset, multipart_body, to_bytes
from tests.support.emulators import Azurite, CosmosServer

Result = TypeVar("Result")
ROOT = Path(__file__).resolve().parent.parent
HOST = "http://localhost:7071"
"""Where the host says the request came in (a URL string only: nothing listens there)."""


@pytest.fixture(scope="module")
def azure_settings(azurite: Azurite, cosmos_server: CosmosServer) -> dict[str, str]:
    fresh = uuid.uuid4().hex[:16]
    return {
        "DICOMWEB_BLOB_STORE": "azure", "DICOMWEB_BLOB_CONNECTION_STRING": azurite.connection_string,
        "DICOMWEB_BLOB_CONTAINER": f"fn-{fresh}", "DICOMWEB_INDEX_STORE": "cosmos",
        "DICOMWEB_COSMOS_ENDPOINT": cosmos_server.endpoint, "DICOMWEB_COSMOS_KEY": cosmos_server.key,
        "DICOMWEB_COSMOS_DATABASE": f"fn-{fresh}", "DICOMWEB_MAX_REQUEST_BYTES": str(100 * 1024 * 1024),
        "DICOMWEB_PUBLIC_URL": f"{HOST}/v1",
    }


@pytest.fixture(scope="module")
def function_app(azure_settings: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[ModuleType]:
    """``function_app`` imported as the worker imports it, with app settings for the emulators."""
    with pytest.MonkeyPatch.context() as patch:
        for name, value in azure_settings.items():
            patch.setenv(name, value)
        patch.setenv("DICOMWEB_DATA_DIR", str(tmp_path_factory.mktemp("function-app")))
        patch.setenv("DICOMWEB_AUTH_DISABLED", "true")  # no OpenID provider in these tests
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


def test_the_queue_trigger_reads_the_blob_events_queue(functions: dict[str, Any]) -> None:
    (trigger,) = bindings(functions["blob_created"])
    assert trigger["type"] == "queueTrigger" and trigger["direction"] == "IN"
    assert trigger["queueName"] == "%DICOMWEB_BLOB_EVENTS_QUEUE%"
    assert trigger["connection"] == "AzureWebJobsStorage"
    # Event Grid writes base64-encoded events; five failed tries park a message in blob-events-poison.
    queues = json.loads((ROOT / "host.json").read_text())["extensions"]["queues"]
    assert queues == {"messageEncoding": "base64", "maxDequeueCount": 5}


# --- the HTTP function, called as the worker calls it --------------------------------------------

class Caller:
    """Builds ``func.HttpRequest`` objects and awaits the registered HTTP function with them."""

    def __init__(self, function: Any) -> None:
        self.user_function = function.get_user_function()

    async def __call__(self, method: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None,
                       params: dict[str, str] | None = None) -> func.HttpResponse:
        headers = {"Host": HOST.removeprefix("http://"), **(headers or {})}  # the host passes the client's Host
        if body:
            headers.setdefault("Content-Length", str(len(body)))
        query = "&".join(f"{k}={v}" for k, v in (params or {}).items())
        request = func.HttpRequest(method=method, url=f"{HOST}/v1/{path}" + (f"?{query}" if query else ""),
                                   headers=headers, params=params or {}, route_params={"route": path}, body=body)
        context = SimpleNamespace(invocation_id=uuid.uuid4().hex, function_name="http_app_func",
                                  function_directory=str(ROOT), trace_context=None, retry_context=None,
                                  thread_local_storage=None)
        response: func.HttpResponse = await self.user_function(request, context)
        return response


class Embedded:
    """The same requests to the embedded server (in process), for comparison."""

    def __init__(self, client: TestClient) -> None:
        self.client = client

    async def __call__(self, method: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None,
                       params: dict[str, str] | None = None) -> Any:
        return self.client.request(method, f"/v1/{path}", content=body or None, headers=headers, params=params)


def _status(response: Any) -> int:
    return response.status_code


def _body(response: Any) -> bytes:
    return response.get_body() if isinstance(response, func.HttpResponse) else response.content


def _json(response: Any) -> Any:
    return json.loads(_body(response).decode().replace(HOST, "ROOT").replace("http://testserver", "ROOT"))


async def _session(call: Any, instance: bytes, ds: Any) -> dict[str, Any]:
    """STOW, QIDO, metadata, a frame, the change feed, delete: what a client sees of each."""
    study, series, sop = ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID
    body, content_type = multipart_body([instance])
    seen: dict[str, Any] = {}
    stow = await call("POST", "studies", body, {"Content-Type": content_type, "Accept": "application/dicom+json"})
    seen["stow"] = (_status(stow), _json(stow))
    qido = await call("GET", "studies", params={"PatientID": ds.PatientID},
                      headers={"Accept": "application/dicom+json"})
    seen["qido"] = (_status(qido), _json(qido))
    metadata = await call("GET", f"studies/{study}/series/{series}/instances/{sop}/metadata",
                    headers={"Accept": "application/dicom+json"})
    seen["metadata"] = (_status(metadata), _json(metadata))
    frame = await call("GET", f"studies/{study}/series/{series}/instances/{sop}/frames/7",
                 headers={"Accept": 'multipart/related; type="application/octet-stream"'})
    seen["frame"] = (_status(frame), len(_body(frame)), _body(frame).count(_frame_bytes(ds, 7)))
    seen["delete"] = _status(await call("DELETE", f"studies/{study}"))
    seen["gone"] = _status(await call("GET", f"studies/{study}/series/{series}/instances/{sop}/metadata"))
    feed = await call("GET", "changefeed", params={"includemetadata": "false"})
    seen["feed"] = (_status(feed), [(e["action"], e["sopInstanceUid"]) for e in _json(feed)])
    return seen


def _frame_bytes(ds: Any, number: int) -> bytes:
    size = ds.Rows * ds.Columns * 2
    return bytes(ds.PixelData[(number - 1) * size:number * size])


def _in_one_loop(function_app: ModuleType, work: Coroutine[Any, Any, Result]) -> Result:
    """Run ``work`` in one event loop, as the worker does, and close the app's clients in it."""

    async def run() -> Result:
        try:
            return await work
        finally:
            await function_app.services.close()

    return asyncio.run(run())


def test_stow_of_a_50_mb_instance_then_every_read_matches_the_embedded_server(
    function_app: ModuleType, functions: dict[str, Any], tmp_path: Path,
) -> None:
    ds = make_dataset(patient_id="FN-BIG", rows=1024, columns=1024, frames=25)  # 52 MB of pixels
    instance = to_bytes(ds)
    assert len(instance) > 50 * 1024 * 1024
    on_functions = _in_one_loop(function_app, _session(Caller(functions["http_app_func"]), instance, ds))
    with TestClient(create_app(Settings(data_dir=tmp_path / "embedded", allowed_hosts=("testserver",)))) as client:
        embedded = asyncio.run(_session(Embedded(client), instance, ds))
    assert on_functions["stow"][0] == 200 and on_functions["qido"][0] == 200
    assert on_functions["frame"][0] == 200 and on_functions["frame"][2] == 1  # the 7th frame, whole
    assert on_functions["delete"] in (200, 202, 204) and on_functions["gone"] == 404
    assert [action for action, _ in on_functions["feed"][1]] == ["create", "delete"]
    assert on_functions == embedded


def test_a_stow_over_the_request_limit_is_a_413_pointing_to_upload_sessions(
    function_app: ModuleType, functions: dict[str, Any],
) -> None:
    caller = Caller(functions["http_app_func"])
    # The host lets bodies over the app's limit through (FUNCTIONS_REQUEST_BODY_SIZE_LIMIT is higher).
    declared = str(100 * 1024 * 1024 + 1)
    headers = {"Content-Type": "application/dicom", "Accept": "application/dicom+json", "Content-Length": declared}
    response = _in_one_loop(function_app, caller("POST", "studies", b"x" * 1024, headers))
    assert response.status_code == 413
    message = response.get_body().decode()
    assert "POST /v1/uploads" in message and declared in message


# --- the queue trigger ----------------------------------------------------------------------------

def _queue_message(event: dict[str, Any]) -> func.QueueMessage:
    """A message as the worker passes it: Event Grid wrote the event base64-encoded, the host decoded it."""
    return func.QueueMessage(id=uuid.uuid4().hex, body=json.dumps(event).encode())


def test_the_queue_trigger_imports_a_dropped_file_once(
    function_app: ModuleType, functions: dict[str, Any], azure_settings: dict[str, str], tmp_path: Path,
) -> None:
    settings = Settings(
        data_dir=tmp_path, blob_store="azure", blob_container=azure_settings["DICOMWEB_BLOB_CONTAINER"],
        blob_connection_string=azure_settings["DICOMWEB_BLOB_CONNECTION_STRING"])
    ds = make_dataset(patient_id="FN-1")
    raw = to_bytes(ds)
    drop(settings, "incoming/upload.dcm", raw)
    key = layout.instance_key(ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID)
    trigger = functions["blob_created"].get_user_function()
    event = event_grid_event(settings, "incoming/upload.dcm", len(raw))
    services = function_app.services

    async def run() -> tuple[Any, list[Any]]:
        await asyncio.gather(*(trigger(_queue_message(event)) for _ in range(3)))  # at-least-once delivery
        await trigger(_queue_message(event))  # late: already moved
        await trigger(_queue_message(event_grid_event(settings, layout.file_name(key), len(raw))))
        return await services.index.get_instance_by_key(key), await services.feed.read(0, 1000)

    record, feed = _in_one_loop(function_app, run())
    assert record is not None and record.sop_uid == ds.SOPInstanceUID
    assert [entry.sop_uid for entry in feed if entry.sop_uid == ds.SOPInstanceUID] == [ds.SOPInstanceUID]


def test_with_auth_disabled_explicitly_the_api_answers(function_app: ModuleType) -> None:
    with TestClient(function_app.asgi, base_url="http://127.0.0.1") as client:
        assert client.get("/v1/studies").status_code in (200, 204)


def test_without_an_authority_the_api_refuses_to_serve(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)
    with TestClient(create_app(settings, require_authority=True), base_url="http://127.0.0.1") as client:
        response = client.get("/v1/studies")
        assert response.status_code == 503 and "DICOMWEB_AUTH_AUTHORITY" in response.json()["message"]
    with TestClient(create_app(settings.with_(auth_disabled=True), require_authority=True),
                    base_url="http://127.0.0.1") as client:
        assert client.get("/v1/studies").status_code in (200, 204)
