"""WADO-RS routes (PS3.18 §10.4). Each resource's handler lives in its own module."""

from __future__ import annotations

from starlette.routing import Route

from dicomweb.api.wado.bulkdata import retrieve_bulkdata
from dicomweb.api.wado.frames import retrieve_frames
from dicomweb.api.wado.instances import retrieve_instances
from dicomweb.api.wado.metadata import retrieve_metadata
from dicomweb.api.wado.rendered import routes as rendered_routes

STUDY = "/studies/{study}"
SERIES = STUDY + "/series/{series}"
INSTANCE = SERIES + "/instances/{instance}"

routes = [
    Route(STUDY, retrieve_instances, methods=["GET"]),
    Route(SERIES, retrieve_instances, methods=["GET"]),
    Route(INSTANCE, retrieve_instances, methods=["GET"]),
    Route(STUDY + "/metadata", retrieve_metadata, methods=["GET"]),
    Route(SERIES + "/metadata", retrieve_metadata, methods=["GET"]),
    Route(INSTANCE + "/metadata", retrieve_metadata, methods=["GET"]),
    Route(INSTANCE + "/frames/{frames}", retrieve_frames, methods=["GET"]),
    Route(INSTANCE + "/bulkdata/{path:path}", retrieve_bulkdata, methods=["GET"]),
    *rendered_routes,
]
