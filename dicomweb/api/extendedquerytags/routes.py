"""/extendedquerytags: add, list, read, change and remove extended query tags.

POST answers 202 ``{"id", "href"}`` with ``Location``: the ``reindex`` operation that makes
the new tags searchable over what is already stored. JSON names and enum values are
camelCase on the wire; enum input is case-insensitive.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from dicomweb.api.context import services_of
from dicomweb.api.operations.status import operation_url
from dicomweb.http.access import ApiRoute
from dicomweb.http.errors import HTTPError, bad_request, not_found
from dicomweb.http.json_body import read_json_body
from dicomweb.http.urls import service_root
from dicomweb.identity.permissions import Permission
from dicomweb.usecases.extended_query_tags import TYPE, ExtendedQueryTags, ReindexRunning, TagNotFound
from dicomweb.usecases.operations.lifecycle import new_operation_id, start_operation
from indexing.extended_tag_store import ExtendedTagExistsError
from indexing.extended_tags import ExtendedTag, ExtendedTagError, QueryStatus

MAX_PAGE = 200


def _registry(request: Request) -> ExtendedQueryTags:
    """The registry; where a server was built without one, adding a tag is refused (400)
    and no tag exists, so reads answer as for an empty registry (404, [])."""
    registry = services_of(request).extended_tags
    if registry is None:
        if request.method == "POST":
            raise bad_request("extended query tags are not available on this server")
        raise not_found(f"no extended query tag {request.path_params.get('path', '')} (none on this store)")
    return registry


def tag_json(request: Request, tag: ExtendedTag) -> dict[str, Any]:
    answer: dict[str, Any] = {
        "path": tag.path, "vr": tag.vr, "privateCreator": tag.private_creator, "level": tag.level.value,
        "status": tag.status.value, "queryStatus": tag.query_status.value,
    }
    if tag.error_count:
        answer["errors"] = {"count": tag.error_count,
                            "href": f"{service_root(request)}/extendedquerytags/{tag.path}/errors"}
    if tag.operation_id:
        answer["operation"] = {"id": tag.operation_id, "href": operation_url(request, tag.operation_id)}
    return answer


async def add_tags(request: Request) -> Response:
    services = services_of(request)
    registry = _registry(request)
    try:
        operation_id = new_operation_id()
        tags = await registry.add(await read_json_body(request), operation_id)
    except ExtendedTagError as exc:
        raise bad_request(str(exc)) from None
    except ReindexRunning as exc:
        href = operation_url(request, exc.operation_id)
        return JSONResponse({"message": "a reindex operation is running", "href": href}, 409,
                            headers={"Location": href})
    except ExtendedTagExistsError:
        raise HTTPError(409, "an extended query tag of the request already exists") from None
    paths = [tag.path for tag in tags]
    resources = [f"{service_root(request)}/extendedquerytags/{path}" for path in paths]
    state = await start_operation(services.operations, services.operation_starter, TYPE,
                                  {"paths": paths, "resources": resources}, operation_id, resources)
    href = operation_url(request, state.operation_id)
    return JSONResponse({"id": state.operation_id, "href": href}, 202, headers={"Location": href})


def _count(request: Request, name: str, default: int, maximum: int, minimum: int) -> int:
    value = request.query_params.get(name, str(default))
    if not value.isascii() or not value.isdigit() or not minimum <= int(value) <= maximum:
        raise bad_request(f"{name} must be an integer from {minimum} to {maximum}, not '{value[:40]}'")
    return int(value)


async def list_tags(request: Request) -> Response:
    limit = _count(request, "limit", 100, MAX_PAGE, 1)
    offset = _count(request, "offset", 0, 10**6, 0)
    registry = services_of(request).extended_tags
    tags = [] if registry is None else await registry.query_tags()
    return JSONResponse([tag_json(request, tag) for tag in tags[offset:offset + limit]])


async def _tag(request: Request) -> ExtendedTag:
    path = request.path_params["path"]
    try:
        return await _registry(request).get(path)
    except ExtendedTagError as exc:
        raise bad_request(f"tag path: {exc}") from None
    except TagNotFound:
        raise not_found(f"no extended query tag {path}") from None


async def get_tag(request: Request) -> Response:
    return JSONResponse(tag_json(request, await _tag(request)))


async def patch_tag(request: Request) -> Response:
    tag = await _tag(request)
    body = await read_json_body(request)
    status = body.get("queryStatus") if isinstance(body, dict) else None
    try:
        query_status = QueryStatus(str(status).lower())
    except ValueError:
        raise bad_request('the body must be {"queryStatus": "enabled"} or {"queryStatus": "disabled"}') from None
    changed = await _registry(request).set_query_status(tag.path, query_status)
    return JSONResponse(tag_json(request, changed))


async def list_errors(request: Request) -> Response:
    tag = await _tag(request)
    limit = _count(request, "limit", 100, MAX_PAGE, 1)
    offset = _count(request, "offset", 0, 10**6, 0)
    return JSONResponse(await _registry(request).errors(tag.path, limit, offset))


async def delete_tag(request: Request) -> Response:
    tag = await _tag(request)
    await _registry(request).remove(tag.path)
    return Response(status_code=204)


_MANAGE = Permission.MANAGE_EXTENDED_QUERY_TAGS
routes = [
    ApiRoute("/extendedquerytags", add_tags, methods=["POST"], permission=_MANAGE),
    ApiRoute("/extendedquerytags", list_tags, methods=["GET"], permission=Permission.READ),
    ApiRoute("/extendedquerytags/{path}", get_tag, methods=["GET"], permission=Permission.READ),
    ApiRoute("/extendedquerytags/{path}/errors", list_errors, methods=["GET"], permission=Permission.READ),
    ApiRoute("/extendedquerytags/{path}", patch_tag, methods=["PATCH"], permission=_MANAGE),
    ApiRoute("/extendedquerytags/{path}", delete_tag, methods=["DELETE"], permission=_MANAGE),
]
