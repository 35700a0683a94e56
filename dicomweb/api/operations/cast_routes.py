"""DICOMcast's recorded failures, next to the ingest failures.

- ``GET /operations/cast-failures``: the studies the FHIR sync skipped, each with
  ``studyInstanceUid``, ``sequence`` (the change-feed entry), ``reason`` and ``failedAt``.
- ``POST /operations/cast-failures/retry`` (optional ``study=UID``): sync them again; the
  answer lists the failures that remain.

404 when this server runs no DICOMcast (``DICOMWEB_FHIR_URL`` unset).
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from dicomcore.uids import is_valid_uid
from dicomweb.api.context import services_of
from dicomweb.http.access import ApiRoute
from dicomweb.http.errors import HTTPError, bad_request, not_found
from dicomweb.identity.permissions import Permission
from dicomweb.usecases.cast.sync import CastSync, CastUnavailable


def _sync(request: Request) -> CastSync:
    runner = services_of(request).cast
    if runner is None:
        raise not_found("DICOMcast is not running on this server (set DICOMWEB_FHIR_URL)")
    return runner.sync


async def cast_failures(request: Request) -> Response:
    return JSONResponse([failure.to_json() for failure in await _sync(request).failures()])


async def retry_cast_failures(request: Request) -> Response:
    study = request.query_params.get("study") or None
    if study is not None and not is_valid_uid(study):
        raise bad_request(f"study={study!r} is not a valid UID")
    try:
        remaining = await _sync(request).retry_failures(study)
    except CastUnavailable as error:
        raise HTTPError(503, f"the FHIR server is unavailable, try again later: {error}") from error
    return JSONResponse([failure.to_json() for failure in remaining])


routes = [
    ApiRoute("/operations/cast-failures", cast_failures, methods=["GET"], permission=Permission.READ),
    ApiRoute("/operations/cast-failures/retry", retry_cast_failures, methods=["POST"], permission=Permission.ADMIN),
]
