"""DELETE /studies/{s}[/series/{se}[/instances/{i}]]: 204, then everything under it is gone.

The order of the steps lives in :mod:`dicomweb.usecases.delete_instances`.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from dicomweb.api.context import services_of
from dicomweb.api.wado.lookup import path_uids
from dicomweb.http.access import ApiRoute
from dicomweb.http.errors import not_found
from dicomweb.identity.permissions import Permission


async def delete(request: Request) -> Response:
    study, series, sop = path_uids(request)
    if not await services_of(request).delete.delete(study, series, sop):
        target = f"instance {sop}" if sop else f"series {series}" if series else f"study {study}"
        raise not_found(f"{target} not found")
    return Response(status_code=204)


routes = [
    ApiRoute("/studies/{study}", delete, methods=["DELETE"], permission=Permission.DELETE),
    ApiRoute("/studies/{study}/series/{series}", delete, methods=["DELETE"], permission=Permission.DELETE),
    ApiRoute("/studies/{study}/series/{series}/instances/{instance}", delete, methods=["DELETE"],
             permission=Permission.DELETE),
]
