"""DELETE /studies/{s}[/series/{se}[/instances/{i}]]: 204, then everything under it is gone.

Order: the index first (so the data vanishes from QIDO and WADO at once), then the
change-feed entries, then the blobs. A crash part way leaves, at worst, unreferenced
files, never an index record pointing at a missing file.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from changefeed.port import Action
from dicomweb.http.errors import not_found
from dicomweb.services import Services, services_of
from dicomweb.storage import layout
from dicomweb.wado.lookup import path_uids
from indexing.indexer import change_entry
from indexing.port import InstanceRecord


async def _remove_blobs(services: Services, record: InstanceRecord) -> None:
    key = record.instance_key
    for name in (layout.metadata_name(key), layout.frames_name(key), layout.file_name(key)):
        await services.blobs.delete(name)


async def delete(request: Request) -> Response:
    services = services_of(request)
    study, series, sop = path_uids(request)
    removed = await services.index.remove_instances(study, series, sop)
    if not removed:
        target = f"instance {sop}" if sop else f"series {series}" if series else f"study {study}"
        raise not_found(f"{target} not found")
    for record in removed:
        await services.feed.append(change_entry(record, Action.DELETE))
    for record in removed:
        await _remove_blobs(services, record)
    services.publisher.kick()
    return Response(status_code=204)


routes = [
    Route("/studies/{study}", delete, methods=["DELETE"]),
    Route("/studies/{study}/series/{series}", delete, methods=["DELETE"]),
    Route("/studies/{study}/series/{series}/instances/{instance}", delete, methods=["DELETE"]),
]
