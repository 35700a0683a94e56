"""Retrieve metadata (PS3.18 §10.4.1.1.2): stored DICOM JSON, joined without re-parsing.

Each instance's metadata was written once at STOW with BulkDataURIs under a placeholder
root; here the placeholder becomes this request's service root and the documents are
concatenated into one JSON array. The ETag is derived from the index records alone (the
instances and their incarnations), so a 304 costs no blob read.
"""

from __future__ import annotations

import hashlib

from starlette.requests import Request
from starlette.responses import Response

from dicomweb.api.context import services_of
from dicomweb.api.wado.lookup import find_instances
from dicomweb.http.accept import accepts_json
from dicomweb.http.errors import not_acceptable, not_found
from dicomweb.http.urls import service_root
from dicomweb.storage.port import BlobNotFoundError
from dicomweb.usecases.sidecars import ROOT_TOKEN
from indexing.port import InstanceRecord


def _etag(records: list[InstanceRecord], root: str) -> str:
    digest = hashlib.sha256(root.encode())
    for record in records:
        digest.update(f"{record.instance_key}:{record.incarnation};".encode())
    return f'"{digest.hexdigest()[:32]}"'


async def retrieve_metadata(request: Request) -> Response:
    services = services_of(request)
    if not accepts_json(request.headers.get("accept")):
        raise not_acceptable("metadata is available as application/dicom+json only")
    records = await find_instances(services, request)
    root = service_root(request)
    etag = _etag(records, root)
    headers = {"ETag": etag, "Cache-Control": "no-cache"}
    if etag in [tag.strip() for tag in request.headers.get("if-none-match", "").split(",")]:
        return Response(status_code=304, headers=headers)
    try:
        documents = await services.sidecars.read_metadata_many([record.instance_key for record in records])
    except BlobNotFoundError as exc:
        # A file gone behind the server's back (its metadata could not be rebuilt): its
        # record is removed now, and the request is answered from what is left.
        if not await services.delete.drop_vanished(records):
            raise
        raise not_found("instance files are gone (removed outside the server); their index records were "
                        "removed: request the metadata again") from exc
    body = b"[" + b",".join(documents).replace(ROOT_TOKEN.encode(), root.encode()) + b"]"
    return Response(body, media_type="application/dicom+json", headers=headers)
