"""GET /operations/ingest-failures: the dropped files that could not be imported, and why.

Each entry is the note :mod:`dicomweb.usecases.failures` wrote beside the file in ``failed/``:
``blob`` (where the file is now), ``source`` (where it was dropped), ``reason``,
``failedAt`` and, when they could be read, the instance's UIDs. ``limit`` (default 100,
at most 1000) bounds the list, which is in name order.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from dicomweb.api.context import services_of
from dicomweb.http.access import ApiRoute
from dicomweb.http.errors import bad_request
from dicomweb.identity.permissions import Permission
from dicomweb.usecases.failures import list_failures

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000


def _limit(request: Request) -> int:
    raw = request.query_params.get("limit") or str(DEFAULT_LIMIT)
    if not raw.isdigit() or not 1 <= int(raw) <= MAX_LIMIT:
        raise bad_request(f"limit={raw!r} must be an integer from 1 to {MAX_LIMIT}")
    return int(raw)


async def ingest_failures(request: Request) -> Response:
    return JSONResponse(await list_failures(services_of(request).blobs, _limit(request)))


routes = [ApiRoute("/operations/ingest-failures", ingest_failures, methods=["GET"], permission=Permission.READ)]
