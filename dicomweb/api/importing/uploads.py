"""Upload sessions: ``POST /uploads`` → 201 ``{"uploadUrl", "expiresOn"}``; on the embedded
store, ``PUT /uploads/{token}`` receives the file (see :mod:`dicomweb.usecases.upload_sessions`).

The uploaded file lands in ``incoming/uploads/`` and is imported by its BlobCreated event;
one that cannot be imported is listed by ``GET /operations/ingest-failures``.
"""

from __future__ import annotations

from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response

from dicomweb.api.context import services_of
from dicomweb.http.access import ApiRoute
from dicomweb.http.errors import HTTPError, bad_request, not_found
from dicomweb.http.multipart import BodyTooLargeError, spool_body
from dicomweb.http.urls import service_root
from dicomweb.identity.permissions import Permission
from dicomweb.storage.port import BlobExistsError
from dicomweb.usecases.upload_sessions import InvalidUploadToken, claim_upload


async def new_upload(request: Request) -> Response:
    session = await services_of(request).uploads.new(service_root(request))
    return JSONResponse({"uploadUrl": session.url, "expiresOn": session.expires_on.strftime("%Y-%m-%dT%H:%M:%SZ")},
                        201)


async def receive_upload(request: Request) -> Response:
    services = services_of(request)
    if services.uploads.signer is not None:
        raise not_found("uploads go straight to Blob Storage with the uploadUrl's SAS")
    try:
        name = services.uploads.blob_name(request.path_params["token"])
    except InvalidUploadToken as exc:
        raise HTTPError(403, str(exc)) from None
    limit = services.settings.max_request_bytes
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise HTTPError(413, f"the upload of {declared} bytes is larger than the {limit}-byte limit")
    path = services.blobs.new_staging_path()
    try:
        size, _ = await spool_body(request.stream(), path, max_bytes=limit)
        if size == 0:
            raise bad_request("the upload is empty")
        await claim_upload(services.blobs, name)
        await services.blobs.put_file(name, path, exclusive=True)
    except BlobExistsError:
        raise HTTPError(409, "this upload URL was used already; ask POST /v1/uploads for another") from None
    except BodyTooLargeError as exc:
        raise HTTPError(413, str(exc)) from None
    except ClientDisconnect:
        return Response(status_code=400)
    finally:
        path.unlink(missing_ok=True)
    return Response(status_code=201)


routes = [
    ApiRoute("/uploads", new_upload, methods=["POST"], permission=Permission.WRITE),
    ApiRoute("/uploads/{token}", receive_upload, methods=["PUT"], permission=Permission.WRITE),
]
