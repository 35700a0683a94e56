"""The operations API, wire-compatible with the managed DICOM service.

``GET /operations/{id}``: 202 with ``Location`` while ``notStarted``/``running``, 200 once
terminal, 404 unknown, 400 for an id that is not a GUID. Beyond the managed service:
``GET /operations`` (newest first; ``limit``, ``offset``, ``status``, ``type``),
``POST /operations/{id}/cancel`` (202; 409 once finished) and
``GET /operations/{id}/errors`` (an import's error log, JSON lines: its ``errorHref``).
"""

from __future__ import annotations

import uuid
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse

from dicomweb.api.context import services_of
from dicomweb.http.access import ApiRoute
from dicomweb.http.errors import HTTPError, bad_request, not_found
from dicomweb.http.params import bounded_int
from dicomweb.http.urls import service_root
from dicomweb.identity.permissions import Permission
from dicomweb.usecases.import_files import TYPE as IMPORT
from dicomweb.usecases.import_files import read_error_log
from dicomweb.usecases.operations.lifecycle import OperationFinished, OperationNotFound, cancel_operation
from indexing.operation_store import OperationState, Status

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000


def operation_id_of(request: Request) -> str:
    """The path's operation id as 32 lowercase hex digits (a GUID, with or without hyphens)."""
    raw = request.path_params["operation_id"]
    try:
        return uuid.UUID(raw).hex
    except ValueError:
        raise bad_request(f"operation id {raw!r} is not a GUID") from None


def operation_url(request: Request, operation_id: str) -> str:
    return f"{service_root(request)}/operations/{operation_id}"


def operation_json(request: Request, state: OperationState) -> dict[str, Any]:
    results = dict(state.results)
    if state.type == IMPORT:
        results["errorHref"] = f"{operation_url(request, state.operation_id)}/errors"
    body: dict[str, Any] = {
        "operationId": state.operation_id, "type": state.type, "createdTime": state.created_time,
        "lastUpdatedTime": state.last_updated_time, "status": state.status.value,
        "percentComplete": state.percent_complete, "resources": state.resources, "results": results,
    }
    if state.error:
        body["errors"] = [state.error]
    return body


async def _state(request: Request) -> OperationState:
    operation_id = operation_id_of(request)
    state = await services_of(request).operations.get(operation_id)
    if state is None:
        raise not_found(f"no operation {operation_id}")
    return state


async def get_operation(request: Request) -> Response:
    state = await _state(request)
    if state.status.terminal:
        return JSONResponse(operation_json(request, state))
    return JSONResponse(operation_json(request, state), 202,
                        headers={"Location": operation_url(request, state.operation_id)})


def _int_param(request: Request, name: str, default: int, low: int, high: int) -> int:
    return bounded_int(name, request.query_params.get(name) or str(default), low, high)


async def list_operations(request: Request) -> Response:
    raw_status = request.query_params.get("status")
    try:
        status = Status(raw_status) if raw_status else None
    except ValueError:
        raise bad_request(f"status={raw_status!r} must be one of {', '.join(s.value for s in Status)}") from None
    states = await services_of(request).operations.recent(
        status=status, type=request.query_params.get("type") or None,
        limit=_int_param(request, "limit", DEFAULT_LIMIT, 1, MAX_LIMIT),
        offset=_int_param(request, "offset", 0, 0, 1 << 31))
    return JSONResponse([operation_json(request, state) for state in states])


async def cancel(request: Request) -> Response:
    operation_id = operation_id_of(request)
    try:
        state = await cancel_operation(services_of(request).operations, operation_id)
    except OperationNotFound:
        raise not_found(f"no operation {operation_id}") from None
    except OperationFinished as exc:
        raise HTTPError(409, str(exc)) from None
    return JSONResponse(operation_json(request, state), 202,
                        headers={"Location": operation_url(request, operation_id)})


async def error_log(request: Request) -> Response:
    state = await _state(request)
    chunks = await read_error_log(services_of(request).blobs, state.operation_id)

    async def body() -> Any:
        for chunk in chunks:
            yield chunk

    return StreamingResponse(body(), media_type="application/x-ndjson")


routes = [
    ApiRoute("/operations", list_operations, methods=["GET"], permission=Permission.READ),
    ApiRoute("/operations/{operation_id}", get_operation, methods=["GET"], permission=Permission.READ),
    ApiRoute("/operations/{operation_id}/cancel", cancel, methods=["POST"], permission=Permission.ADMIN),
    ApiRoute("/operations/{operation_id}/errors", error_log, methods=["GET"], permission=Permission.READ),
]
