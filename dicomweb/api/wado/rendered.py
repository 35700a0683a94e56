"""Rendered images and thumbnails (PS3.18 §10.4.1.1.6, §10.4.1.1.7).

``/instances/{i}/rendered`` and ``/frames/{n}/rendered`` as image/jpeg (default),
image/png or image/gif, with ``quality``, ``viewport`` and ``window``; ``/thumbnail`` at
study, series, instance and frame level. One frame is read through the frame index and
decoded through pydicom's pixel handlers; a multi-frame instance renders its first frame.
"""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from dicomcore.frames import frame_transfer_syntax
from dicomcore.pixels import decode_frame, encode_image, to_display
from dicomweb.api.context import Services, services_of
from dicomweb.api.wado.frames import copy_of, parse_frame_list, pixel_attributes, stored_frame
from dicomweb.api.wado.lookup import find_instance, find_instances
from dicomweb.http.accept import matches, parse_accept
from dicomweb.http.access import ApiRoute
from dicomweb.http.errors import bad_request, not_acceptable, not_found
from dicomweb.http.params import bounded_int, parse_ascii_int
from dicomweb.identity.permissions import Permission
from indexing.port import InstanceRecord

RENDERED_TYPES = ("image/jpeg", "image/png", "image/gif")
THUMBNAIL_SIZE = (128, 128)
MAX_VIEWPORT = 4096
"""The largest rendered width or height: a rendering's memory grows with its area."""


def _media_type(request: Request) -> str:
    for entry in parse_accept(request.headers.get("accept")):
        for offered in RENDERED_TYPES:
            if matches(entry.media_type, offered):
                return offered
    raise not_acceptable(f"rendered images are available as {', '.join(RENDERED_TYPES)}")


def _quality(request: Request) -> int:
    return bounded_int("quality", request.query_params.get("quality", "90"), 1, 100)


def _viewport(request: Request, default: tuple[int, int] | None) -> tuple[int, int] | None:
    raw = request.query_params.get("viewport")
    if raw is None:
        return default
    pieces = raw.split(",")
    sizes = [parse_ascii_int(piece) for piece in pieces[:2]]
    if len(pieces) not in (2, 6) or not all(size is not None and 0 < size <= MAX_VIEWPORT for size in sizes):
        raise bad_request(f"viewport={raw[:40]!r} must be 'width,height' with integers from 1 to {MAX_VIEWPORT}")
    return int(pieces[0]), int(pieces[1])


def _window(request: Request) -> tuple[float, float] | None:
    raw = request.query_params.get("window")
    if raw is None:
        return None
    pieces = raw.split(",")
    try:
        center, width = float(pieces[0]), float(pieces[1])
    except (ValueError, IndexError) as exc:
        raise bad_request(f"window={raw!r} must be 'center,width[,function]'") from exc
    if len(pieces) > 2 and pieces[2].strip().lower() not in ("linear", ""):
        raise bad_request(f"window function {pieces[2]!r} is not supported; use linear")
    if width <= 0:
        raise bad_request(f"window width {width} must be positive")
    return center, width


async def _render(services: Services, record: InstanceRecord, number: int, request: Request,
                  default_viewport: tuple[int, int] | None) -> Response:
    media_type = _media_type(request)
    quality, viewport, window = _quality(request), _viewport(request, default_viewport), _window(request)
    copy = await copy_of(services, record)
    index = copy.index
    if index.number_of_frames == 0:
        raise not_found(f"instance {record.sop_uid} has no pixel data to render")
    if number > index.number_of_frames:
        raise not_found(f"frame {number} does not exist: the instance has {index.number_of_frames} frame(s)")
    frame = await stored_frame(services, copy, number)
    attributes = await pixel_attributes(services, record.instance_key)

    def work() -> bytes:
        pixels = decode_frame(attributes, frame_transfer_syntax(record.transfer_syntax_uid), frame)
        return encode_image(to_display(pixels, attributes, window), media_type, quality=quality, viewport=viewport)

    try:
        body = await run_in_threadpool(work)
    except (NotImplementedError, RuntimeError, ValueError) as exc:
        raise not_acceptable(f"cannot render {record.transfer_syntax_uid} pixel data: {exc}") from exc
    return Response(body, media_type=media_type)


def _single_frame(request: Request) -> int:
    numbers = parse_frame_list(request.path_params["frames"], services_of(request).settings.max_frames)
    if len(numbers) != 1:
        raise bad_request("rendered and thumbnail frames take one frame number")
    return numbers[0]


async def rendered_instance(request: Request) -> Response:
    services = services_of(request)
    return await _render(services, await find_instance(services, request), 1, request, None)


async def rendered_frame(request: Request) -> Response:
    services = services_of(request)
    number = _single_frame(request)
    return await _render(services, await find_instance(services, request), number, request, None)


async def thumbnail(request: Request) -> Response:
    """The representative image of a study or series: its instance with the fewest frames
    (for a slide pyramid, the smallest level), first by series and instance number."""
    services = services_of(request)
    if "frames" in request.path_params:
        record, number = await find_instance(services, request), _single_frame(request)
    else:
        records = [r for r in await find_instances(services, request) if r.number_of_frames > 0]
        if not records:
            raise not_found("nothing with pixel data to make a thumbnail of")
        record, number = min(records, key=lambda r: r.number_of_frames), 1
    return await _render(services, record, number, request, THUMBNAIL_SIZE)


STUDY = "/studies/{study}"
SERIES = STUDY + "/series/{series}"
INSTANCE = SERIES + "/instances/{instance}"

routes = [
    ApiRoute(INSTANCE + "/rendered", rendered_instance, methods=["GET"], permission=Permission.READ),
    ApiRoute(INSTANCE + "/frames/{frames}/rendered", rendered_frame, methods=["GET"], permission=Permission.READ),
    ApiRoute(STUDY + "/thumbnail", thumbnail, methods=["GET"], permission=Permission.READ),
    ApiRoute(SERIES + "/thumbnail", thumbnail, methods=["GET"], permission=Permission.READ),
    ApiRoute(INSTANCE + "/thumbnail", thumbnail, methods=["GET"], permission=Permission.READ),
    ApiRoute(INSTANCE + "/frames/{frames}/thumbnail", thumbnail, methods=["GET"], permission=Permission.READ),
]
