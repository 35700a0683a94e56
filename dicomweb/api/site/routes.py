"""The site's routes, outside the service root: /, /docs, /viewer/."""

from __future__ import annotations

from dicomweb.api.site import apidocs, landing, viewer

routes = [*landing.routes, *apidocs.routes, *viewer.routes]
