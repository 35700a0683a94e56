"""Who may call which route: every route declares its permission where it is declared.

A route is an :class:`ApiRoute` (a Starlette ``Route`` with a required ``permission``):
``ApiRoute("/studies", search, methods=["GET"], permission=Permission.READ)``. A route that
needs no token (a landing page, ``/health``, the capabilities document) says so with
``permission=PUBLIC``: that is the one place public routes are declared, and
:func:`declared_permissions` lists them. :func:`check_routes` runs when the app is built and
refuses a plain ``Route`` (a route nobody thought about would otherwise be open), and a
test walks the app's routes the same way.

The check runs in the route itself (after routing, so it knows the route's permission):

- no authority configured (embedded, loopback): everyone is the anonymous caller, allowed;
- authority required but missing (the Functions app without one): 503 on every
  non-public route, saying what to set;
- no token: 401 with ``WWW-Authenticate: Bearer realm="..."``;
- a token that does not validate: 401 with ``error="invalid_token"`` and the reason;
- a valid token whose roles do not grant the permission: 403 naming the permission.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Any, Final

from starlette.concurrency import run_in_threadpool
from starlette.routing import BaseRoute, Mount, Route
from starlette.types import ASGIApp, Receive, Scope, Send

from dicomweb.http.audit import audit_record
from dicomweb.identity.permissions import Permission
from dicomweb.identity.tokens import ANONYMOUS, Caller, InvalidToken, ProviderUnreachable, TokenValidator


class _Public(Enum):
    PUBLIC = "public"


PUBLIC: Final = _Public.PUBLIC
"""The permission of a route anyone may call (no patient data behind it)."""

RouteAccess = Permission | _Public


class UndeclaredPermission(TypeError):
    pass


class Mode(Enum):
    OPEN = "open"
    """no authority: everyone may do everything (the embedded server on loopback)"""
    TOKENS = "tokens"
    """bearer tokens from the authority"""
    UNCONFIGURED = "unconfigured"
    """an authority is required but none is set: nothing but public routes answers"""


@dataclass(frozen=True)
class AccessPolicy:
    mode: Mode
    tokens: TokenValidator | None = None

    @property
    def realm(self) -> str:
        return self.tokens.realm if self.tokens else "dicomweb"


class ApiRoute(Route):
    """A route with the permission it needs (required): one for all its methods, or one per
    method (a path served by several features, merged by :mod:`dicomweb.http.routing`)."""

    def __init__(self, path: str, endpoint: Callable[..., Any], *, methods: list[str],
                 permission: RouteAccess | Mapping[str, RouteAccess], **kwargs: Any) -> None:
        super().__init__(path, endpoint, methods=methods, **kwargs)
        if isinstance(permission, Mapping):
            self.permissions = {method.upper(): access for method, access in permission.items()}
        else:
            self.permissions = {method.upper(): permission for method in methods}
        if "GET" in self.permissions:
            self.permissions.setdefault("HEAD", self.permissions["GET"])
        missing = sorted(set(self.methods or ()) - set(self.permissions))
        if missing:
            raise UndeclaredPermission(f"route {path} declares no permission for {', '.join(missing)}")
        self.template = path
        """the full path template (with the mounts' prefixes), set by :func:`check_routes`"""
        self.app = _Guard(self.app, self)

    def permission_for(self, method: str) -> RouteAccess:
        return self.permissions[method]


def _walk(routes: Sequence[BaseRoute], prefix: str = "") -> Iterator[tuple[str, BaseRoute]]:
    for route in routes:
        if isinstance(route, Mount):
            yield from _walk(route.routes, prefix + route.path)
        else:
            yield prefix + getattr(route, "path", ""), route


def check_routes(routes: Sequence[BaseRoute]) -> None:
    """Refuse a route without a declared permission; give each its full template."""
    for template, route in _walk(routes):
        if not isinstance(route, ApiRoute):
            raise UndeclaredPermission(f"route {template} declares no permission: make it an ApiRoute "
                                       "with permission=... (dicomweb.http.access)")
        route.template = template


def declared_permissions(routes: Sequence[BaseRoute]) -> list[tuple[str, str, RouteAccess]]:
    """(method, path template, permission) of every route: the permission table."""
    table = []
    for template, route in _walk(routes):
        if isinstance(route, ApiRoute):
            for method in sorted(route.methods or ()):
                if method != "HEAD":
                    table.append((method, template, route.permission_for(method)))
    return table


class _Guard:
    """Checks the caller before the route's endpoint runs."""

    def __init__(self, app: ASGIApp, route: ApiRoute) -> None:
        self.app = app
        self.route = route

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        permission = self.route.permission_for(scope["method"])
        record = audit_record(scope)
        if record is not None:
            record.route = self.route.template
            record.permission = permission.value
            record.add_path_uids(scope.get("path_params", {}))
        if permission is PUBLIC:
            await self.app(scope, receive, send)
            return
        policy: AccessPolicy = scope["app"].state.access
        refusal = await _refusal(policy, scope, permission)
        if refusal is not None:
            await refusal(scope, receive, send)
            return
        await self.app(scope, receive, send)


async def _refusal(policy: AccessPolicy, scope: Scope, permission: Permission) -> ASGIApp | None:
    if policy.mode is Mode.OPEN:
        _note_caller(scope, ANONYMOUS)
        return None
    if policy.mode is Mode.UNCONFIGURED or policy.tokens is None:
        return _json(503, "authentication is not configured: set DICOMWEB_AUTH_AUTHORITY and "
                          "DICOMWEB_AUTH_AUDIENCE (or DICOMWEB_AUTH_DISABLED=true for a test deployment)")
    token = _bearer_token(scope)
    if token is None:
        return _json(401, "this request needs a bearer token (Authorization: Bearer <JWT>)",
                     {"WWW-Authenticate": f'Bearer realm="{policy.realm}"'})
    caller = policy.tokens.remembered(token)
    try:
        if caller is None:  # verifying a signature is CPU work, and fetching keys blocks
            caller = await run_in_threadpool(policy.tokens.validate, token)
    except InvalidToken as exc:
        return _json(401, f"invalid token: {exc}", {"WWW-Authenticate": _challenge(policy.realm, str(exc))})
    except ProviderUnreachable as exc:
        return _json(503, str(exc))
    _note_caller(scope, caller)
    if permission not in caller.permissions:
        roles = ", ".join(caller.roles) or "none"
        return _json(403, f"the '{permission.value}' permission is needed; the token's roles ({roles}) "
                          "do not grant it")
    return None


def _note_caller(scope: Scope, caller: Caller) -> None:
    scope["dicomweb.caller"] = caller
    record = audit_record(scope)
    if record is not None:
        record.caller = caller.subject
        record.application = caller.application


def _bearer_token(scope: Scope) -> str | None:
    for name, value in scope["headers"]:
        if name == b"authorization":
            scheme, _, token = value.decode("latin-1").partition(" ")
            if scheme.lower() == "bearer" and token.strip():
                return token.strip()
            return None
    return None


def _challenge(realm: str, description: str) -> str:
    quoted = description.replace("\\", "").replace('"', "'")
    return f'Bearer realm="{realm}", error="invalid_token", error_description="{quoted}"'


def _json(status: int, message: str, headers: dict[str, str] | None = None) -> ASGIApp:
    body = json.dumps({"status": status, "message": message}).encode()

    async def respond(scope: Scope, receive: Receive, send: Send) -> None:
        raw = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
        raw += [(k.lower().encode(), v.encode("latin-1")) for k, v in (headers or {}).items()]
        await send({"type": "http.response.start", "status": status, "headers": raw})
        await send({"type": "http.response.body", "body": body})

    return respond
