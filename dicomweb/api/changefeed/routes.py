"""GET /changefeed and /changefeed/latest: read the ordered log of changes.

Paging by sequence (``offset`` = the last sequence read, ``limit``) or by time window
(``startTime``/``endTime``, ISO 8601 with a time zone, then ``offset`` counts entries
into the window). ``includeMetadata`` (default true) adds the instance's DICOM JSON when
the instance is still stored.
"""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from changefeed.port import ChangeEntry, State
from dicomweb.api.context import Services, services_of
from dicomweb.http.access import ApiRoute
from dicomweb.http.errors import bad_request
from dicomweb.http.params import bounded_int
from dicomweb.http.urls import service_root
from dicomweb.identity.permissions import Permission
from dicomweb.storage.port import BlobNotFoundError
from dicomweb.usecases.sidecars import ROOT_TOKEN

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000


def _int_param(request: Request, name: str, default: int, low: int, high: int) -> int:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    return bounded_int(name, raw, low, high)


def _bool_param(request: Request, name: str, default: bool) -> bool:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    if raw.lower() not in ("true", "false"):
        raise bad_request(f"{name}={raw!r} must be true or false")
    return raw.lower() == "true"


def _time_param(request: Request, name: str) -> str | None:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return None
    try:
        moment = datetime.fromisoformat(raw.replace(" ", "+"))  # a '+' in a query decodes to ' '
    except ValueError as exc:
        raise bad_request(f"{name}={raw!r} is not an ISO 8601 date-time") from exc
    if moment.tzinfo is None:
        raise bad_request(f"{name}={raw!r} has no time zone (add Z or +hh:mm)")
    try:
        in_utc = moment.astimezone(UTC)
    except OverflowError as exc:  # 0001-01-01T00:00+14:00 is before the year 1 in UTC
        raise bad_request(f"{name}={raw[:40]!r} is outside the years 1-9999 once converted to UTC") from exc
    return in_utc.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


async def _metadata(services: Services, entry: ChangeEntry, root: str) -> Any:
    if entry.state is not State.CURRENT:
        return None
    try:
        raw = await services.sidecars.read_metadata(entry.instance_key)
    except BlobNotFoundError:
        return None
    return json.loads(raw.replace(ROOT_TOKEN.encode(), root.encode()))


async def _render(services: Services, entry: ChangeEntry, root: str, with_metadata: bool) -> dict[str, Any]:
    body: dict[str, Any] = {
        "sequence": entry.sequence,
        "timestamp": entry.timestamp,
        "action": entry.action.value,
        "state": entry.state.value,
        "studyInstanceUid": entry.study_uid,
        "seriesInstanceUid": entry.series_uid,
        "sopInstanceUid": entry.sop_uid,
        "sopClassUid": entry.sop_class_uid,
    }
    if with_metadata:
        body["metadata"] = await _metadata(services, entry, root)
    return body


async def read_changefeed(request: Request) -> Response:
    services = services_of(request)
    offset = _int_param(request, "offset", 0, 0, 2**62)
    limit = _int_param(request, "limit", DEFAULT_LIMIT, 1, MAX_LIMIT)
    with_metadata = _bool_param(request, "includeMetadata", True)
    start, end = _time_param(request, "startTime"), _time_param(request, "endTime")
    if start and end and start >= end:
        raise bad_request("startTime must be before endTime")
    if start or end:
        entries = await services.feed.read_window(start, end, offset, limit)
    else:
        entries = await services.feed.read(offset, limit)
    root = service_root(request)
    # Metadata reads are independent: run them together rather than one after another.
    return JSONResponse(await asyncio.gather(*(_render(services, entry, root, with_metadata) for entry in entries)))


async def read_latest(request: Request) -> Response:
    services = services_of(request)
    with_metadata = _bool_param(request, "includeMetadata", True)
    entry = await services.feed.latest()
    if entry is None:
        return JSONResponse({"sequence": 0})
    return JSONResponse(await _render(services, entry, service_root(request), with_metadata))


routes = [
    ApiRoute("/changefeed", read_changefeed, methods=["GET"], permission=Permission.READ),
    ApiRoute("/changefeed/latest", read_latest, methods=["GET"], permission=Permission.READ),
]
