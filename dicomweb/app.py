"""The ASGI application: one route table, the same under uvicorn and Azure Functions.

Each DICOMweb transaction and feature lives in its own package under :mod:`dicomweb.api`
(``stow``, ``qido``, ``wado``, ``delete``, ``changefeed``, ``operations``) and contributes a
``routes`` list; they are mounted under the service root. Outside it: the health probes
(``health``), the capabilities summary and OpenAPI description (``capabilities``: ``/v1`` and
``/v1/openapi.json``), and the pages for people (``site``: ``/``, ``/docs``, ``/viewer/``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.routing import Mount

from dicomcore import redact
from dicomweb.api.capabilities import routes as capabilities_routes
from dicomweb.api.changefeed import routes as changefeed_routes
from dicomweb.api.context import Services
from dicomweb.api.delete import routes as delete_routes
from dicomweb.api.extendedquerytags import routes as extendedquerytags_routes
from dicomweb.api.health import routes as health_routes
from dicomweb.api.importing import routes as importing_routes
from dicomweb.api.operations import cast_routes
from dicomweb.api.operations import routes as operations_routes
from dicomweb.api.qido import routes as qido_routes
from dicomweb.api.site import routes as site_routes
from dicomweb.api.stow import routes as stow_routes
from dicomweb.api.wado import routes as wado_routes
from dicomweb.background import event_indexing, fhir_sync, operations_running
from dicomweb.composition import build_services
from dicomweb.http.access import AccessPolicy, Mode, check_routes
from dicomweb.http.audit import AuditSink, AuditTrail
from dicomweb.http.errors import handle_http_error, handle_missing_blob
from dicomweb.http.exposure import SecurityHeaders, allowed_hosts, check_cors
from dicomweb.http.limits import HeaderLimits
from dicomweb.http.proxies import TrustedProxies
from dicomweb.http.request_log import RequestLog
from dicomweb.http.routing import merge_methods
from dicomweb.http.telemetry import RequestTelemetry
from dicomweb.http.urls import SERVICE_PREFIX, UrlPolicy
from dicomweb.identity.permissions import load_roles
from dicomweb.identity.tokens import TokenValidator
from dicomweb.settings import Settings
from dicomweb.storage.port import BlobNotFoundError

EXPOSED_HEADERS = ["Content-Type", "Content-Length", "ETag", "Warning", "Content-Location", "X-Request-Id"]


def access_policy(settings: Settings, require_authority: bool = False,
                  tokens: TokenValidator | None = None) -> AccessPolicy:
    """Tokens when an authority is set; else open, unless the caller requires an authority
    (the Functions app) and it was not explicitly disabled."""
    if settings.auth_authority:
        tokens = tokens or TokenValidator(settings.auth_authority, settings.auth_audiences,
                                          settings.auth_roles_claim, load_roles(settings.auth_roles_file))
        return AccessPolicy(Mode.TOKENS, tokens)
    if require_authority and not settings.auth_disabled:
        return AccessPolicy(Mode.UNCONFIGURED)
    return AccessPolicy(Mode.OPEN)


def _audit_sink(settings: Settings) -> AuditSink:
    """A file on the embedded store (DATA/audit.log unless set); the logger in Azure."""
    if settings.audit_log:
        return AuditSink(Path(settings.audit_log))
    return AuditSink(settings.data_dir / "audit.log" if settings.blob_store == "filesystem" else None)


def create_app(settings: Settings | None = None, services: Services | None = None, *,
               require_authority: bool = False, tokens: TokenValidator | None = None) -> Starlette:
    """The app. ``services`` may be given (tests, Functions); else built from ``settings``.

    ``require_authority``: without an authority, answer 503 instead of serving openly (the
    Functions app). ``tokens``: a validator to use instead of one built from the settings.
    """
    settings = settings or Settings.from_env()
    policy = access_policy(settings, require_authority, tokens)
    check_cors(settings.cors_origins, policy.mode is Mode.TOKENS)
    proxies = TrustedProxies(settings.trusted_proxies)
    audit = _audit_sink(settings)
    # Built now, not in the lifespan: Azure Functions' ASGI adapter may never send the
    # lifespan startup event. Constructing the adapters does no I/O.
    own_services = services is None
    wired = services or build_services(settings)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        try:
            async with event_indexing(wired), operations_running(wired), fhir_sync(wired):
                yield
        finally:
            audit.close()
            if own_services:
                await wired.close()

    middleware = [Middleware(RequestLog)] if settings.request_log else []
    middleware += [
        Middleware(RequestTelemetry),
        Middleware(AuditTrail, sink=audit, proxies=proxies, prefix=SERVICE_PREFIX),
        Middleware(SecurityHeaders, api_prefix=SERVICE_PREFIX),
        Middleware(HeaderLimits),
        Middleware(TrustedHostMiddleware, allowed_hosts=allowed_hosts(settings.allowed_hosts, settings.public_url),
                   www_redirect=False),
    ]
    if settings.cors_origins:
        middleware.append(
            Middleware(
                CORSMiddleware,
                allow_origins=list(settings.cors_origins),
                allow_methods=["GET", "POST", "PUT", "DELETE", "OPTIONS"],
                allow_headers=["Accept", "Authorization", "Content-Type", "If-None-Match", "X-Request-Id"],
                allow_credentials=False,  # the token travels in Authorization, never in cookies
                expose_headers=EXPOSED_HEADERS,
            )
        )
    routes = [
        *site_routes.routes,
        *health_routes.routes,
        *capabilities_routes.routes,
        Mount(
            SERVICE_PREFIX,
            routes=merge_methods([
                *stow_routes.routes,
                *qido_routes.routes,
                *wado_routes.routes,
                *delete_routes.routes,
                *changefeed_routes.routes,
                *cast_routes.routes,  # before /operations/{id}, which would take "cast-failures"
                *operations_routes.routes,
                *extendedquerytags_routes.routes,
                *importing_routes.routes,
                # Also under the service root: the Functions host routes only /v1/* to the app.
                *health_routes.routes,
            ]),
        )
    ]
    check_routes(routes)
    app = Starlette(
        routes=routes,
        middleware=middleware,
        exception_handlers={HTTPException: handle_http_error, BlobNotFoundError: handle_missing_blob},
        lifespan=lifespan,
    )
    app.state.services = wired
    redact.install("uvicorn", "uvicorn.error")  # in every worker process: logs carry no patient data
    app.state.access = policy
    app.state.urls = UrlPolicy(settings.public_url, proxies)
    return app
