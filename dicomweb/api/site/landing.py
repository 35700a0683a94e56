"""GET /: the landing page. Version, store mode, counts, the service root to paste into a
client, links to the viewer, the API docs and the change feed, and copy-paste examples.

Rendered with :class:`string.Template` (every value HTML-escaped): one small page does not
need a template engine. It holds no patient data, because it may be public; the study list
on it is fetched by the browser from QIDO-RS, under the API's own authentication.
"""

from __future__ import annotations

import html
import logging
from importlib import resources
from string import Template

from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from dicomweb import __version__
from dicomweb.api.capabilities.summary import store_mode
from dicomweb.api.context import services_of
from dicomweb.api.site.viewer import INSTALL_HINT, viewer_installed
from dicomweb.http.access import PUBLIC, ApiRoute
from dicomweb.http.urls import service_root

log = logging.getLogger(__name__)
_TEMPLATE = Template(resources.files(__package__).joinpath("landing.html").read_text(encoding="utf-8"))


async def landing_page(request: Request) -> Response:
    """The start page for people: what this server is, how to reach it, what it holds."""
    services = services_of(request)
    installed = viewer_installed(services.settings.viewer_dir)
    try:
        counts = await services.index.counts()
        studies, series, instances = (str(counts.studies), str(counts.series), str(counts.instances))
    except Exception as error:  # noqa: BLE001 - the page still helps when the index is down
        log.warning("landing page: index unavailable (%s)", type(error).__name__)
        studies = series = instances = "?"
    values = {
        "version": __version__,
        "mode": store_mode(services.settings),
        "studies": studies,
        "series": series,
        "instances": instances,
        "root": service_root(request),
    }
    page = _TEMPLATE.substitute(
        {key: html.escape(value) for key, value in values.items()},
        viewer_link='<a href="/viewer/" id="viewer-link">viewer</a>' if installed else "",
        viewer_note="" if installed else (
            '<p class="note" id="viewer-missing">The viewer is not installed. With node and npm present, run '
            f"<code>{html.escape(INSTALL_HINT.split('#')[0].strip())}</code> and restart the server.</p>"),
        viewer_installed="true" if installed else "false",
    )
    return HTMLResponse(page, headers={"Cache-Control": "no-store"})


routes = [ApiRoute("/", landing_page, methods=["GET"], permission=PUBLIC)]
