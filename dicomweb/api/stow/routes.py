"""STOW-RS routes: check the request, stream its parts into the store, answer per PS3.18.

Status (PS3.18 §10.5.3): 200 all stored; 202 some failed; 409 all failed; 400 malformed;
406 unacceptable Accept; 413 over the size limit; 415 unsupported content type; 507 all
failed and a store is full (each failed instance says so: FailureReason 272 and an
ErrorComment).
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque

from python_multipart.multipart import parse_options_header
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response

from dicomcore.capacity import is_out_of_space
from dicomcore.uids import is_valid_uid
from dicomweb.api.context import Services, services_of
from dicomweb.api.stow.response import stow_response, warning_headers
from dicomweb.http.accept import accepts_json
from dicomweb.http.access import ApiRoute
from dicomweb.http.audit import note_stored
from dicomweb.http.errors import HTTPError, bad_request, not_acceptable, unsupported_media_type
from dicomweb.http.multipart import (
    BodyTooLargeError,
    MemoryBudget,
    MultipartError,
    SpooledPart,
    TooManyPartsError,
    read_parts,
    receive_body,
    valid_boundary,
)
from dicomweb.http.urls import service_root, study_url
from dicomweb.identity.permissions import Permission
from dicomweb.usecases.store_instance import FailureReason, Outcome, store_upload

DICOM = "application/dicom"

log = logging.getLogger(__name__)


def _content_type(request: Request) -> tuple[str, dict[str, str]]:
    media_type, params = parse_options_header(request.headers.get("content-type", ""))
    return media_type.decode("latin-1").lower(), {
        name.decode("latin-1").lower(): value.decode("latin-1") for name, value in params.items()}


UPLOAD_SESSIONS = "send larger files through an upload session (POST /v1/uploads) or straight to the import container"


def _too_large(message: str) -> HTTPError:
    """413 naming the limit and where larger files go (in Azure the limit is the Functions request size)."""
    return HTTPError(413, f"{message}; {UPLOAD_SESSIONS}")


def _check_size(request: Request, limit: int) -> None:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise _too_large(f"request body of {declared} bytes is larger than the {limit}-byte limit")


PARTS_AHEAD = 2
"""Received parts waiting for the store while the next part is read: receiving part N+1
overlaps storing part N (its fsyncs and index commit). A part is held in memory only up to
``DICOMWEB_STOW_MEMORY_PART_BYTES`` and while the process holds less than
``DICOMWEB_STOW_MEMORY_TOTAL_BYTES`` of them (else it is spooled)."""


async def _store_multipart(
    request: Request, services: Services, boundary: str, root_type: str, study: str | None
) -> list[Outcome]:
    outcomes: list[Outcome] = []
    limit = services.settings.max_parts
    parts = read_parts(request.stream(), boundary, services.blobs.new_staging_path,
                       max_bytes=services.settings.max_request_bytes, max_parts=limit,
                       memory_part_bytes=services.settings.stow_memory_part_bytes, budget=_memory_budget(request))
    queued: deque[asyncio.Task[Outcome]] = deque()
    previous: asyncio.Task[Outcome] | None = None
    try:
        try:
            async for part in parts:
                # Each part is stored after the one before it (a chain), as when one was stored
                # before the next was read: duplicates within a request answer as before.
                previous = asyncio.create_task(_store_after(previous, services, part, root_type, study))
                queued.append(previous)
                while len(queued) > PARTS_AHEAD:
                    outcomes.append(await queued.popleft())
        finally:
            # Also when reading failed (client gone, malformed tail): parts received whole are
            # stored, as they were before, and no task is left running.
            while queued:
                outcomes.append(await queued.popleft())
    except (BodyTooLargeError, TooManyPartsError) as exc:
        if not any(outcome.stored for outcome in outcomes):
            raise
        # Some instances are stored already: say which, and that the rest was not read.
        outcomes.append(Outcome(None, None, failure=FailureReason.PROCESSING_FAILURE,
                                message=f"{exc}; the parts after part {len(outcomes)} were not read"))
    return outcomes


async def _store_after(previous: asyncio.Task[Outcome] | None, services: Services, part: SpooledPart,
                       root_type: str, study: str | None) -> Outcome:
    try:
        if previous is not None:
            await asyncio.wait([previous])
        return await _store_part(services, part, root_type, study)
    finally:
        part.release()


def _memory_budget(request: Request) -> MemoryBudget:
    """The app's budget of STOW part bytes held in memory (one per server process)."""
    state = request.app.state
    budget: MemoryBudget | None = getattr(state, "stow_memory_budget", None)
    if budget is None:
        budget = state.stow_memory_budget = MemoryBudget(services_of(request).settings.stow_memory_total_bytes)
    return budget


async def _store_part(services: Services, part: SpooledPart, root_type: str, study: str | None) -> Outcome:
    part_type = (part.content_type or root_type).split(";")[0].strip().lower()
    if part_type != DICOM:
        part.path.unlink(missing_ok=True)
        return Outcome(None, None, failure=FailureReason.VALIDATION_FAILURE,
                       message=f"part Content-Type {part_type[:80]!r} is not {DICOM}")
    if part.size == 0:
        part.path.unlink(missing_ok=True)
        return Outcome(None, None, failure=FailureReason.VALIDATION_FAILURE, message="part is empty")
    return await store_upload(services.store, part.path, study, part.sha256, part.data)


async def _store_single(request: Request, services: Services, study: str | None) -> list[Outcome]:
    path = services.blobs.new_staging_path()
    try:
        body = await receive_body(request.stream(), path, max_bytes=services.settings.max_request_bytes,
                                  memory_bytes=services.settings.stow_memory_part_bytes, budget=_memory_budget(request))
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    try:
        if body.size == 0:
            path.unlink(missing_ok=True)
            raise bad_request("request body is empty")
        return [await store_upload(services.store, path, study, body.sha256, body.data)]
    finally:
        body.release()


async def _receive(request: Request, services: Services, study: str | None) -> list[Outcome]:
    media_type, params = _content_type(request)
    if media_type == "multipart/related":
        root_type = params.get("type", DICOM).lower()
        if root_type != DICOM:
            raise unsupported_media_type(
                f"multipart/related type {root_type!r} is not supported; send type=\"{DICOM}\"")
        boundary = params.get("boundary")
        if not boundary:
            raise bad_request("multipart/related Content-Type has no boundary parameter")
        if not valid_boundary(boundary):
            raise bad_request(f"multipart boundary {boundary[:80]!r} is not 1 to 70 characters allowed by RFC 2046")
        outcomes = await _store_multipart(request, services, boundary, root_type, study)
        if not outcomes:
            raise bad_request("multipart body has no parts")
        return outcomes
    if media_type == DICOM:
        return await _store_single(request, services, study)
    raise unsupported_media_type(
        f"Content-Type {media_type or '(none)'!r} is not supported; send "
        f"multipart/related; type=\"{DICOM}\" or {DICOM}")


async def store_instances(request: Request) -> Response:
    services = services_of(request)
    study = request.path_params.get("study")
    if study is not None and not is_valid_uid(study):
        raise bad_request(f"study UID {study!r} in the URL is not a valid UID")
    if not accepts_json(request.headers.get("accept")):
        raise not_acceptable("STOW answers application/dicom+json; the Accept header does not allow it")
    _check_size(request, services.settings.max_request_bytes)
    try:
        outcomes = await _receive(request, services, study)
    except ClientDisconnect:
        # Nobody is left to answer; what was stored before the break stays stored.
        log.info("STOW client disconnected before the end of its request body")
        return Response(status_code=400)
    except (BodyTooLargeError, TooManyPartsError) as exc:
        raise _too_large(str(exc)) from exc
    except MultipartError as exc:
        raise bad_request(str(exc)) from exc
    except OSError as exc:
        if not is_out_of_space(exc):
            raise
        # Spooling the upload filled the disk: nothing of this part was stored.
        raise HTTPError(507, "insufficient storage: no space left to receive the request; "
                             "nothing more was stored, send it again when space is freed") from exc
    for outcome in outcomes:
        if outcome.stored:
            note_stored(request.scope, outcome.study_uid or "", outcome.series_uid or "", outcome.sop_uid or "")
    root = service_root(request)
    status, body = stow_response(outcomes, root, study_url(root, study) if study else None)
    return JSONResponse(body, status, media_type="application/dicom+json", headers=warning_headers(outcomes))


routes = [
    ApiRoute("/studies", store_instances, methods=["POST"], permission=Permission.WRITE),
    ApiRoute("/studies/{study}", store_instances, methods=["POST"], permission=Permission.WRITE),
]
