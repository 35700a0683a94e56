"""Retrieve metadata (PS3.18 §10.4.1.1.2): stored DICOM JSON, joined without re-parsing.

Each instance's metadata is its header's DICOM JSON as STOW derived it, BulkDataURIs under a
placeholder root. The index record carries it, and the index hands it over as JSON text
(:meth:`IndexStore.list_headers`; SQLite cuts it out of the stored record in C). Here the
placeholder becomes this request's service root and the documents are concatenated into
one JSON array: one index query and one batch of ``stat`` calls (is every instance file
still there?), no JSON parsed or serialized. The ETag is derived from the same rows (the
instances and their incarnations), so a 304 costs the query alone.

Where the store cannot tell cheaply whether the files are there (Blob Storage: a request
per blob), the metadata sidecars are read instead, as before: reading them is the check.
A file gone behind the server's back is a 404 either way, and its record is removed.
"""

from __future__ import annotations

import hashlib

from starlette.requests import Request
from starlette.responses import Response

from dicomcore import layout
from dicomweb.api.context import Services, services_of
from dicomweb.api.wado.lookup import path_uids
from dicomweb.http.accept import accepts_json
from dicomweb.http.errors import not_acceptable, not_found
from dicomweb.http.urls import service_root
from dicomweb.storage.port import BlobNotFoundError
from dicomweb.usecases.sidecars import ROOT_TOKEN
from indexing.port import InstanceHeader

GONE = ("instance files are gone (removed outside the server); their index records were removed: "
        "request the metadata again")


def _etag(headers: list[InstanceHeader], root: str) -> str:
    digest = hashlib.sha256(root.encode())
    for header in headers:
        digest.update(f"{header.instance_key}:{header.incarnation};".encode())
    return f'"{digest.hexdigest()[:32]}"'


async def retrieve_metadata(request: Request) -> Response:
    services = services_of(request)
    if not accepts_json(request.headers.get("accept")):
        raise not_acceptable("metadata is available as application/dicom+json only")
    study, series, sop = path_uids(request)
    headers = await services.index.list_headers(study, series, sop)
    if not headers:
        target = f"instance {sop}" if sop else f"series {series}" if series else f"study {study}"
        raise not_found(f"{target} not found")
    root = service_root(request)
    etag = _etag(headers, root)
    response_headers = {"ETag": etag, "Cache-Control": "no-cache"}
    if etag in [tag.strip() for tag in request.headers.get("if-none-match", "").split(",")]:
        return Response(status_code=304, headers=response_headers)
    keys = {layout.file_name(header.instance_key): header.instance_key for header in headers}
    missing = await services.blobs.missing_local(list(keys))
    if missing is None:
        documents = [document.decode() for document in await _from_sidecars(services, study, series, sop, headers)]
    elif missing:
        # A file gone behind the server's back: its record is removed now, and the
        # request is answered 404 (asked again, it lists what is left).
        records = [await services.index.get_instance_by_key(keys[name]) for name in missing]
        await services.delete.drop_vanished([record for record in records if record is not None])
        raise not_found(GONE)
    else:
        documents = [header.json for header in headers]
    body = "[" + ",".join(documents).replace(ROOT_TOKEN, root) + "]"
    return Response(body.encode(), media_type="application/dicom+json", headers=response_headers)


async def _from_sidecars(services: Services, study: str, series: str | None, sop: str | None,
                         headers: list[InstanceHeader]) -> list[bytes]:
    try:
        return await services.sidecars.read_metadata_many([header.instance_key for header in headers])
    except BlobNotFoundError as exc:
        # A file gone behind the server's back (its metadata could not be rebuilt).
        if not await services.delete.drop_vanished(await services.index.list_instances(study, series, sop)):
            raise
        raise not_found(GONE) from exc
