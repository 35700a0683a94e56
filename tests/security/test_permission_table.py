"""Every route declares its permission, and every route × role answers as the table says."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.testclient import TestClient

from dicomweb.http.access import PUBLIC, ApiRoute, UndeclaredPermission, check_routes, declared_permissions
from dicomweb.identity.permissions import BUILTIN_ROLES, Permission
from tests.security.conftest import bearer
from tests.support.oidc import ROLE_CLIENTS, OidcProvider

EXAMPLE_PARAMS = {"study": "1.2.3", "series": "1.2.3.4", "instance": "1.2.3.4.5", "frames": "1",
                  "path": "7FE00010", "name": "incoming/x.dcm", "operation_id": "0123456789abcdef",
                  "token": "not-a-token"}


def walk(routes: list[BaseRoute], prefix: str = "") -> Iterator[tuple[str, BaseRoute]]:
    for route in routes:
        if isinstance(route, Mount):
            yield from walk(route.routes, prefix + route.path)
        else:
            yield prefix + getattr(route, "path", ""), route


def concrete(template: str) -> str:
    return re.sub(r"\{(\w+)(?::\w+)?\}", lambda match: EXAMPLE_PARAMS[match.group(1)], template)


def test_every_route_of_the_app_declares_a_permission(auth_client: TestClient) -> None:
    routes = list(walk(auth_client.app.routes))  # type: ignore[attr-defined]
    assert len(routes) > 20
    undeclared = [template for template, route in routes if not isinstance(route, ApiRoute)]
    assert undeclared == [], f"routes without a permission: {undeclared}"


def test_a_route_without_a_permission_stops_the_app_from_being_built() -> None:
    async def endpoint(request: Request) -> Response:
        return Response()

    with pytest.raises(UndeclaredPermission, match="/v1/forgotten declares no permission"):
        check_routes([Mount("/v1", routes=[Route("/forgotten", endpoint)])])


def test_every_route_and_role_answers_as_the_table_says(auth_client: TestClient, oidc_provider: OidcProvider) -> None:
    table = declared_permissions(auth_client.app.routes)  # type: ignore[attr-defined]
    tokens = {client: oidc_provider.token(client) for client in [*ROLE_CLIENTS, "norole"]}
    checked = 0
    for method, template, permission in table:
        url = concrete(template)
        anonymous = auth_client.request(method, url)
        if permission is PUBLIC:
            assert anonymous.status_code not in (401, 403), (method, template)
            continue
        assert anonymous.status_code == 401, (method, template, anonymous.status_code)
        for client, token in tokens.items():
            granted = BUILTIN_ROLES.get(ROLE_CLIENTS.get(client, ""), frozenset())
            response = auth_client.request(method, url, headers=bearer(token))
            if permission in granted:  # past the access check (a route may answer 403 itself, e.g. a bad upload URL)
                assert response.status_code != 401, (method, template, client, response.text)
                assert "permission is needed" not in response.text, (method, template, client, response.text)
            else:
                assert response.status_code == 403, (method, template, client, response.status_code)
                assert f"'{permission.value}' permission" in response.json()["message"]
            checked += 1
    assert checked >= 4 * 25
    assert {permission for _, _, permission in table} >= {Permission.READ, Permission.WRITE, Permission.DELETE,
                                                          Permission.ADMIN}


def test_a_public_route_answers_without_a_token_beside_a_protected_one(oidc_provider: OidcProvider) -> None:
    """How a landing page or /health is declared: ``permission=PUBLIC``, in its route list."""
    from starlette.applications import Starlette

    from dicomweb.http.access import AccessPolicy, Mode
    from dicomweb.identity.permissions import load_roles
    from dicomweb.identity.tokens import TokenValidator
    from tests.support.oidc import AUDIENCE

    async def endpoint(request: Request) -> Response:
        return Response("ok")

    routes: list[BaseRoute] = [ApiRoute("/health", endpoint, methods=["GET"], permission=PUBLIC),
                               Mount("/v1", routes=[ApiRoute("/studies", endpoint, methods=["GET"],
                                                             permission=Permission.READ)])]
    check_routes(routes)
    app = Starlette(routes=routes)
    app.state.access = AccessPolicy(Mode.TOKENS, TokenValidator(oidc_provider.issuer, (AUDIENCE,), "roles",
                                                                 load_roles(None)))
    with TestClient(app) as client:
        assert client.get("/health").status_code == 200
        assert client.get("/v1/studies").status_code == 401
        assert client.get("/v1/studies", headers=bearer(oidc_provider.token("reader"))).status_code == 200
    assert ("GET", "/health", PUBLIC) in declared_permissions(routes)
