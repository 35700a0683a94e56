"""WADO-RS routes (PS3.18 §10.4). Each resource's handler lives in its own module."""

from __future__ import annotations

from dicomweb.api.wado.bulkdata import retrieve_bulkdata
from dicomweb.api.wado.frames import retrieve_frames
from dicomweb.api.wado.instances import retrieve_instances
from dicomweb.api.wado.metadata import retrieve_metadata
from dicomweb.api.wado.rendered import routes as rendered_routes
from dicomweb.http.access import ApiRoute
from dicomweb.identity.permissions import Permission

STUDY = "/studies/{study}"
SERIES = STUDY + "/series/{series}"
INSTANCE = SERIES + "/instances/{instance}"

routes = [
    ApiRoute(STUDY, retrieve_instances, methods=["GET"], permission=Permission.READ),
    ApiRoute(SERIES, retrieve_instances, methods=["GET"], permission=Permission.READ),
    ApiRoute(INSTANCE, retrieve_instances, methods=["GET"], permission=Permission.READ),
    ApiRoute(STUDY + "/metadata", retrieve_metadata, methods=["GET"], permission=Permission.READ),
    ApiRoute(SERIES + "/metadata", retrieve_metadata, methods=["GET"], permission=Permission.READ),
    ApiRoute(INSTANCE + "/metadata", retrieve_metadata, methods=["GET"], permission=Permission.READ),
    ApiRoute(INSTANCE + "/frames/{frames}", retrieve_frames, methods=["GET"], permission=Permission.READ),
    ApiRoute(INSTANCE + "/bulkdata/{path:path}", retrieve_bulkdata, methods=["GET"], permission=Permission.READ),
    *rendered_routes,
]
