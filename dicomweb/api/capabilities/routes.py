"""GET /v1 (the capabilities summary) and GET /v1/openapi.json (the OpenAPI description)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from dicomweb.api.capabilities.openapi import openapi_document
from dicomweb.api.capabilities.summary import capabilities
from dicomweb.api.context import services_of
from dicomweb.http.access import PUBLIC, ApiRoute
from dicomweb.http.urls import SERVICE_PREFIX, service_root


async def read_capabilities(request: Request) -> Response:
    """What this server supports: transactions, their resources and media types, the store mode."""
    summary = capabilities(request.app.routes, services_of(request).settings, service_root(request))
    return JSONResponse(summary)


async def read_openapi(request: Request) -> Response:
    """The OpenAPI 3.0 description of every route, generated from the route table."""
    return JSONResponse(openapi_document(request.app.routes))


# Full paths, at the top level: a Mount of the service root would match "/v1/..." but not "/v1".
routes = [
    ApiRoute(SERVICE_PREFIX, read_capabilities, methods=["GET"], permission=PUBLIC),
    ApiRoute(SERVICE_PREFIX + "/openapi.json", read_openapi, methods=["GET"], permission=PUBLIC),
]
