"""GET /operations/ingest-failures: the dropped files that could not be imported, and why.

Each entry is the note :mod:`dicomweb.usecases.failures` wrote beside the file in ``failed/``:
``blob`` (where the file is now), ``source`` (where it was dropped), ``reason``,
``failedAt`` and, when they could be read, the instance's UIDs. ``limit`` (default 100,
at most 1000) bounds the list, which is in name order, and ``offset`` pages through it.
A failure whose instance was stored since is not listed.

``DELETE /operations/ingest-failures/{name}`` removes one failed file and its note
(``name``: the file's name under ``failed/``).
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from dicomweb.api.context import services_of
from dicomweb.http.access import ApiRoute
from dicomweb.http.errors import not_found
from dicomweb.http.params import bounded_int
from dicomweb.identity.permissions import Permission
from dicomweb.usecases.failures import delete_failure, list_failures

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000


def _int_param(request: Request, name: str, default: int, low: int, high: int) -> int:
    return bounded_int(name, request.query_params.get(name) or str(default), low, high)


async def ingest_failures(request: Request) -> Response:
    services = services_of(request)
    limit = _int_param(request, "limit", DEFAULT_LIMIT, 1, MAX_LIMIT)
    offset = _int_param(request, "offset", 0, 0, 1 << 31)
    return JSONResponse(await list_failures(services.blobs, services.index, limit, offset))


async def remove_failure(request: Request) -> Response:
    name = request.path_params["name"]
    if not await delete_failure(services_of(request).blobs, name):
        raise not_found(f"no ingest failure named {name!r}")
    return Response(status_code=204)


routes = [
    ApiRoute("/operations/ingest-failures", ingest_failures, methods=["GET"], permission=Permission.READ),
    ApiRoute("/operations/ingest-failures/{name:path}", remove_failure, methods=["DELETE"],
             permission=Permission.ADMIN),
]
