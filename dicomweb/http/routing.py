"""One route per path, whatever feature packages define its methods.

Starlette answers a request whose path matches but whose method does not with a 405 from
the *first* route of that path, naming only that route's methods: ``PUT /studies`` would
say ``Allow: POST`` although ``GET /studies`` works. Merging the routes of one path into
one route that dispatches by method makes the 405's ``Allow`` list every method served.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from dicomweb.http.access import ApiRoute

Endpoint = Callable[[Request], Awaitable[Response]]


def merge_methods(routes: Sequence[BaseRoute]) -> list[BaseRoute]:
    """``routes`` with the function routes of one path merged, in first-seen order."""
    groups: dict[str, list[Route]] = {}
    merged: list[BaseRoute | str] = []
    for route in routes:
        if isinstance(route, Route) and route.methods:
            if route.path not in groups:
                merged.append(route.path)
            groups.setdefault(route.path, []).append(route)
        else:
            merged.append(route)
    return [_merged(groups[item]) if isinstance(item, str) else item for item in merged]


def _merged(group: list[Route]) -> Route:
    if len(group) == 1:
        return group[0]
    handlers: dict[str, Endpoint] = {}
    for route in group:
        for method in route.methods or ():
            handlers.setdefault(method, route.endpoint)

    async def by_method(request: Request) -> Response:
        return await handlers[request.method](request)

    # Kept for whoever describes the routes (the OpenAPI generator): each method's own endpoint.
    setattr(by_method, "handlers", handlers)  # noqa: B010 - an attribute on a function
    if all(isinstance(route, ApiRoute) for route in group):  # each method keeps its permission
        permissions = {method: route.permission_for(method)
                       for route in reversed(group) for method in route.methods or ()
                       if isinstance(route, ApiRoute)}
        return ApiRoute(group[0].path, by_method, methods=sorted(handlers), name=group[0].name,
                        permission=permissions)
    # A route without a declared permission stays one: the app then refuses to start.
    return Route(group[0].path, by_method, methods=sorted(handlers), name=group[0].name)
