"""GET /health (liveness) and GET /health/ready (readiness).

At the top level, since they describe the process, not the DICOMweb service; the app also
mounts them under the service root (``/v1/health``, ``/v1/health/ready``) because the Azure
Functions host (route prefix ``v1``) passes only ``/v1/*`` to the app.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from dicomweb.api.context import services_of
from dicomweb.http.access import PUBLIC, ApiRoute
from dicomweb.usecases.readiness import check_readiness

NO_STORE = {"Cache-Control": "no-store"}


async def liveness(request: Request) -> Response:
    """The process answers requests (no I/O: a slow store must not get a live process restarted)."""
    return JSONResponse({"status": "ok"}, headers=NO_STORE)


async def readiness(request: Request) -> Response:
    """The blob store and the index answer: 200, else 503 naming the component that does not."""
    services = services_of(request)
    result = await check_readiness(services.blobs, services.index)
    status = "ready" if result.ready else "unavailable"
    return JSONResponse({"status": status, "checks": result.checks}, 200 if result.ready else 503, headers=NO_STORE)


routes = [
    ApiRoute("/health", liveness, methods=["GET"], permission=PUBLIC),
    ApiRoute("/health/ready", readiness, methods=["GET"], permission=PUBLIC),
]
