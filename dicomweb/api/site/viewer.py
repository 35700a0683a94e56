"""The OHIF viewer at /viewer/: its prebuilt bundle (installed by scripts/fetch_viewer.sh)
and an ``app-config.js`` we generate, pointing it at this server's service root.

Same origin as the DICOMweb routes, so the browser needs no CORS. Any path that is not a
file of the bundle gets ``index.html``: OHIF is a single-page app and routes itself
(``/viewer/viewer?StudyInstanceUIDs=...``, ``/viewer/microscopy?...``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, RedirectResponse, Response

from dicomweb.api.context import services_of
from dicomweb.http.access import PUBLIC, ApiRoute
from dicomweb.http.urls import service_root

BASE = "/viewer"
INSTALL_HINT = "bash scripts/setup.sh   # with node and npm installed: fetches the viewer into viewer/ohif"
_MEDIA_TYPES = {".wasm": "application/wasm", ".mjs": "text/javascript", ".js": "text/javascript"}


def viewer_installed(folder: Path) -> bool:
    return (folder / "index.html").is_file()


def app_config(dicomweb_root: str) -> str:
    """OHIF's runtime configuration: one DICOMweb data source (this server), its own modes
    (the basic viewer and, for slides, the microscopy viewer are built into the bundle)."""
    source: dict[str, Any] = {
        "namespace": "@ohif/extension-default.dataSourcesModule.dicomweb",
        "sourceName": "dicomweb",
        "configuration": {
            "friendlyName": "dicomweb-server",
            "name": "dicomweb-server",
            "wadoUriRoot": dicomweb_root,
            "qidoRoot": dicomweb_root,
            "wadoRoot": dicomweb_root,
            "qidoSupportsIncludeField": True,
            "imageRendering": "wadors",
            "thumbnailRendering": "wadors",
            "enableStudyLazyLoad": True,
            "supportsFuzzyMatching": False,
            "supportsWildcard": True,
            "omitQuotationForMultipartRequest": True,
            "bulkDataURI": {"enabled": True},
        },
    }
    config = {
        "routerBasename": BASE,
        "extensions": [],
        "modes": [],
        "showStudyList": True,
        "maxNumberOfWebWorkers": 2,
        # Same origin, and a local server usually has no GPU: these banners would only cover the image.
        "showWarningMessageForCrossOrigin": False,
        "showCPUFallbackMessage": False,
        "showLoadingIndicator": True,
        "investigationalUseDialog": {"option": "never"},
        "defaultDataSourceName": "dicomweb",
        "dataSources": [source],
    }
    return f"window.config = {json.dumps(config, indent=2)};\n"


async def viewer_root(request: Request) -> Response:
    """The viewer's start page lives at /viewer/ (its relative links need the slash)."""
    return RedirectResponse(f"{BASE}/", status_code=307)


async def viewer_file(request: Request) -> Response:
    """The OHIF viewer: its files, our app-config.js, and index.html for its own routes."""
    folder = services_of(request).settings.viewer_dir
    path = request.path_params["path"]
    if path == "app-config.js":
        return Response(app_config(service_root(request)), media_type="text/javascript",
                        headers={"Cache-Control": "no-store"})
    if not viewer_installed(folder):
        return HTMLResponse(_NOT_INSTALLED, 404)
    file = _file_in(folder, path)
    if file is None:
        return FileResponse(folder / "index.html", media_type="text/html", headers={"Cache-Control": "no-store"})
    return FileResponse(file, media_type=_MEDIA_TYPES.get(file.suffix))


def _file_in(folder: Path, path: str) -> Path | None:
    """``folder/path`` when it is a file inside ``folder`` (``..`` and links out are refused)."""
    if not path:
        return None
    root = folder.resolve()
    candidate = (root / path).resolve()
    if not candidate.is_relative_to(root) or not candidate.is_file():
        return None
    return candidate


_NOT_INSTALLED = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Viewer not installed</title></head>
<body><h1>The viewer is not installed</h1>
<p>The OHIF viewer is fetched by the setup when node and npm are present. Install node and npm, then run</p>
<pre>{INSTALL_HINT}</pre><p>and restart the server. <a href="/">Back to the start page</a></p></body></html>
"""

routes = [
    ApiRoute(BASE, viewer_root, methods=["GET"], permission=PUBLIC),
    ApiRoute(BASE + "/{path:path}", viewer_file, methods=["GET"], permission=PUBLIC),
]
