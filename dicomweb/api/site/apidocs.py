"""GET /docs: the OpenAPI description rendered by Swagger UI, bundled from PyPI
(``swagger-ui-bundle``), so the page works offline and with no node installed."""

from __future__ import annotations

from pathlib import Path

from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, Response
from swagger_ui_bundle import swagger_ui_path

from dicomweb.http.access import PUBLIC, ApiRoute
from dicomweb.http.errors import not_found
from dicomweb.http.urls import SERVICE_PREFIX

ASSETS = Path(swagger_ui_path)
_SERVED = {"swagger-ui.css", "swagger-ui-bundle.js", "swagger-ui-standalone-preset.js", "favicon-32x32.png"}

_PAGE = f"""<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>dicomweb-server API</title>
  <link rel="stylesheet" href="/docs/assets/swagger-ui.css">
  <link rel="icon" type="image/png" href="/docs/assets/favicon-32x32.png">
</head>
<body>
  <p style="font-family: sans-serif; margin: 1em 2em"><a href="/">dicomweb-server</a> &middot;
     what each transaction supports in detail: docs/conformance.md</p>
  <div id="swagger-ui"></div>
  <script src="/docs/assets/swagger-ui-bundle.js"></script>
  <script>
    window.ui = SwaggerUIBundle({{url: "{SERVICE_PREFIX}/openapi.json", dom_id: "#swagger-ui", deepLinking: true}});
  </script>
</body>
</html>
"""


async def api_docs(request: Request) -> Response:
    """The API documentation page (Swagger UI over /v1/openapi.json)."""
    return HTMLResponse(_PAGE)


async def api_docs_asset(request: Request) -> Response:
    """Swagger UI's script, stylesheet and icon."""
    name = request.path_params["name"]
    if name not in _SERVED:  # a fixed list: nothing else of the package is reachable
        raise not_found(f"no such documentation asset: {name}")
    return FileResponse(ASSETS / name)


routes = [
    ApiRoute("/docs", api_docs, methods=["GET"], permission=PUBLIC),
    ApiRoute("/docs/assets/{name}", api_docs_asset, methods=["GET"], permission=PUBLIC),
]
