"""The ASGI application: one route table, the same under uvicorn and Azure Functions.

Each DICOMweb transaction lives in its own package (``stow``, ``qido``, ``wado``,
``delete``) and contributes a ``routes`` list; they are mounted under the service root.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.routing import Mount

from changefeed import routes as changefeed_routes
from dicomweb.delete import routes as delete_routes
from dicomweb.http.errors import HTTPError, handle_http_error
from dicomweb.http.limits import HeaderLimits
from dicomweb.http.urls import SERVICE_PREFIX
from dicomweb.qido import routes as qido_routes
from dicomweb.services import Services, build_services
from dicomweb.settings import Settings
from dicomweb.stow import routes as stow_routes
from dicomweb.wado import routes as wado_routes
from indexing import routes as indexing_routes
from indexing.background import event_indexing

EXPOSED_HEADERS = ["Content-Type", "Content-Length", "ETag", "Warning", "Content-Location"]


def create_app(settings: Settings | None = None, services: Services | None = None) -> Starlette:
    """The app. ``services`` may be given (tests, Functions); else built from ``settings``."""
    settings = settings or Settings.from_env()
    # Built now, not in the lifespan: Azure Functions' ASGI adapter may never send the
    # lifespan startup event. Constructing the adapters does no I/O.
    own_services = services is None
    services = services or build_services(settings)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        try:
            async with event_indexing(services):
                yield
        finally:
            if own_services:
                await services.close()

    middleware = [Middleware(HeaderLimits)]
    if settings.cors_origins:
        middleware.append(
            Middleware(
                CORSMiddleware,
                allow_origins=list(settings.cors_origins),
                allow_methods=["GET", "POST", "DELETE", "OPTIONS"],
                allow_headers=["Accept", "Authorization", "Content-Type", "If-None-Match"],
                expose_headers=EXPOSED_HEADERS,
            )
        )
    routes = [
        Mount(
            SERVICE_PREFIX,
            routes=[
                *stow_routes.routes,
                *qido_routes.routes,
                *wado_routes.routes,
                *delete_routes.routes,
                *changefeed_routes.routes,
                *indexing_routes.routes,
            ],
        )
    ]
    app = Starlette(
        routes=routes,
        middleware=middleware,
        exception_handlers={HTTPError: handle_http_error},
        lifespan=lifespan,
    )
    app.state.services = services
    return app

