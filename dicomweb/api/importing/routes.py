"""POST /import: start a bulk import of the files under a prefix of the import area.

Body: ``{"source": {"prefix": "batch-7/", "container": "..."}, "deleteSource": false}``
(``container`` in Azure mode only). Answers 202 ``{"id", "href"}`` with ``Location``: the
operation to watch (``GET /operations/{id}``).
"""

from __future__ import annotations

import re
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from dicomweb.api.context import services_of
from dicomweb.api.importing import uploads
from dicomweb.api.operations.status import operation_url
from dicomweb.http.access import ApiRoute
from dicomweb.http.errors import bad_request
from dicomweb.http.json_body import read_json_body
from dicomweb.identity.permissions import Permission
from dicomweb.storage.port import ImportAreaError
from dicomweb.usecases.import_files import TYPE, import_input, starting_results
from dicomweb.usecases.operations.lifecycle import start_operation

CONTAINER_NAME = re.compile(r"[a-z0-9](?!.*--)[a-z0-9-]{1,61}[a-z0-9]")


async def _json_object(request: Request) -> dict[str, Any]:
    document = await read_json_body(request)
    if not isinstance(document, dict):
        raise bad_request('the request body must be a JSON object: {"source": {"prefix": "..."}}')
    return document


def _source(document: dict[str, Any]) -> tuple[str, str | None, bool]:
    source = document.get("source")
    if not isinstance(source, dict):
        raise bad_request('"source" is missing: give {"source": {"prefix": "folder/"}}')
    prefix, container = source.get("prefix"), source.get("container")
    if not isinstance(prefix, str) or not prefix:
        raise bad_request('"source.prefix" must be a non-empty string naming files of the import area')
    if container is not None and (not isinstance(container, str) or not CONTAINER_NAME.fullmatch(container)):
        raise bad_request('"source.container" must be a Blob Storage container name (3-63 lowercase letters, '
                          'digits and single hyphens)')
    delete_source = document.get("deleteSource", False)
    if not isinstance(delete_source, bool):
        raise bad_request('"deleteSource" must be true or false')
    return prefix, container, delete_source


async def start_import(request: Request) -> Response:
    services = services_of(request)
    prefix, container, delete_source = _source(await _json_object(request))
    try:
        services.import_areas(container).check_prefix(prefix)
    except (ImportAreaError, ValueError) as exc:
        raise bad_request(f"source: {exc}") from None
    state = await start_operation(services.operations, services.operation_starter, TYPE,
                                  import_input(prefix, container, delete_source),
                                  results=starting_results())
    href = operation_url(request, state.operation_id)
    return JSONResponse({"id": state.operation_id, "href": href}, 202, headers={"Location": href})


routes = [ApiRoute("/import", start_import, methods=["POST"], permission=Permission.WRITE), *uploads.routes]

