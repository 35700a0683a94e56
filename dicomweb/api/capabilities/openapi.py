"""An OpenAPI 3.0 description (what the bundled Swagger UI 4 renders) generated from the app's route table.

Why not Starlette's ``SchemaGenerator``: it takes each operation from a YAML block in the
endpoint's docstring and silently leaves out endpoints without one, so a route added
without that block would be missing from the description. Here every route is listed by
construction (Starlette's own ``get_endpoints`` walks the table, mounts included); the
summary and description come from the endpoint's docstring (or its module's), the path
parameters from the path, the group (tag) from the package the route lives in
(``dicomweb.api.qido.routes`` → ``qido``).
"""

from __future__ import annotations

import inspect
import re
import sys
from collections.abc import Callable, Sequence
from typing import Any

from starlette.routing import BaseRoute
from starlette.schemas import BaseSchemaGenerator, EndpointInfo

from dicomweb import __version__

_PARAMETER = re.compile(r"{([^}:]+)(?::[^}]*)?}")


def feature_of(endpoint: Callable[..., Any]) -> str:
    """The package under :mod:`dicomweb.api` a route lives in: ``qido``, ``wado``, ``site``..."""
    parts = getattr(endpoint, "__module__", "").split(".")
    return parts[2] if len(parts) > 2 and parts[:2] == ["dicomweb", "api"] else "other"


def endpoints(routes: Sequence[BaseRoute]) -> list[EndpointInfo]:
    """Every (path, method, endpoint) of the route table; HEAD, implied by GET, left out.

    A route serving several features' methods on one path (:func:`dicomweb.http.routing.merge_methods`)
    is described by each method's own endpoint, not by the dispatcher.
    """
    found = []
    for info in _Walker().get_endpoints(list(routes)):
        handlers = getattr(info.func, "handlers", {})
        found.append(info._replace(func=handlers.get(info.http_method.upper(), info.func)))
    return found


def openapi_document(routes: Sequence[BaseRoute]) -> dict[str, Any]:
    paths: dict[str, dict[str, Any]] = {}
    for info in endpoints(routes):
        paths.setdefault(info.path, {})[info.http_method] = _operation(info)
    return {
        "openapi": "3.0.3",
        "info": {
            "title": "dicomweb-server",
            "version": __version__,
            "description": "DICOMweb (DICOM PS3.18): STOW-RS, QIDO-RS, WADO-RS, delete and a change feed. "
                           "What each transaction supports in detail: docs/conformance.md.",
        },
        "paths": dict(sorted(paths.items())),
    }


def _operation(info: EndpointInfo) -> dict[str, Any]:
    summary, description = _doc(info.func)
    operation: dict[str, Any] = {
        "operationId": _operation_id(info),
        "tags": [feature_of(info.func)],
        "summary": summary,
        "responses": {"default": {"description": "see docs/conformance.md; errors are JSON {status, message}"}},
    }
    if description:
        operation["description"] = description
    names = _PARAMETER.findall(info.path)
    if names:
        operation["parameters"] = [
            {"name": name, "in": "path", "required": True, "schema": {"type": "string"}} for name in names]
    return operation


def _doc(endpoint: Callable[..., Any]) -> tuple[str, str]:
    """The endpoint's docstring as (first line, rest); its module's when it has none."""
    text = inspect.getdoc(endpoint) or inspect.getdoc(sys.modules.get(endpoint.__module__)) or ""
    first, _, rest = text.strip().partition("\n")
    return first.strip() or endpoint.__name__.replace("_", " "), rest.strip()


def _operation_id(info: EndpointInfo) -> str:
    words = re.sub(r"[^A-Za-z0-9]+", "_", _PARAMETER.sub(r"\1", info.path)).strip("_")
    return f"{info.http_method}_{words or 'root'}"


class _Walker(BaseSchemaGenerator):
    """Only for :meth:`get_endpoints` (the route walk); the schema itself is built above."""

    def get_schema(self, routes: list[BaseRoute]) -> dict[str, Any]:
        return openapi_document(routes)
