"""Retrieve frames (PS3.18 §10.4.1.1.3): index lookup, frame range, one ranged read.

The frame index (where each frame's bytes lie in the stored file) was computed at STOW;
it is cached here per stored copy, so a hot tile on the embedded store costs a ``stat``
and one read (see :func:`locate`). No decoding unless the client asks for native frames of a compressed
instance. Files whose frames could not be located fall back to pydicom reading the file.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass

from cachetools import LRUCache
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from dicomcore import layout
from dicomcore.frames import FrameIndex, frame_transfer_syntax
from dicomcore.instance import InstanceTooLargeError, read_frame_fallback
from dicomcore.pixels import decode_frame, encode_frame, native_bytes
from dicomweb.api.context import Services, services_of
from dicomweb.api.wado.lookup import find_instance, path_uids
from dicomweb.api.wado.negotiate import OCTET_STREAM, Plan, negotiate_frames, same_frame_bytes
from dicomweb.http import multipart
from dicomweb.http.errors import HTTPError, bad_request, not_acceptable, not_found
from dicomweb.http.params import parse_ascii_int
from dicomweb.storage.port import BlobNotFoundError

CACHE_FRAMES = 1_000_000
"""How many frames' locations the cache holds (~150 bytes each: ~150 MB at most). A slide
level of 100,000 tiles is one entry weighing 100,000; a CT slice weighs 1."""


@dataclass(frozen=True)
class StoredCopy:
    """One stored copy of an instance: its blob folder and a tag that changes if the file
    is replaced (a local file's inode, or the index record's incarnation)."""

    key: str
    version: str


async def locate(services: Services, request: Request) -> StoredCopy:
    """The instance file the URL names. On a local store, a ``stat`` answers without an
    index lookup (the blob name is derived from the UIDs), so a hot tile costs one
    ``stat`` and one ``pread``; a network store asks the index."""
    study, series, sop = path_uids(request)
    assert series is not None and sop is not None
    key = layout.instance_key(study, series, sop)
    try:
        version = services.blobs.version_now(layout.file_name(key))
    except BlobNotFoundError as exc:
        raise not_found(f"instance {sop} not found in series {series} of study {study}") from exc
    if version is not None:
        return StoredCopy(key, version)
    record = await find_instance(services, request)
    return StoredCopy(record.instance_key, record.incarnation)


class FrameIndexCache:
    """A bounded LRU of frame indexes, keyed by stored copy, weighed by frame count."""

    def __init__(self, budget: int = CACHE_FRAMES) -> None:
        self._entries: LRUCache[StoredCopy, FrameIndex] = LRUCache(maxsize=budget, getsizeof=_weight)

    async def get(self, services: Services, copy: StoredCopy) -> FrameIndex:
        index = self._entries.get(copy)
        if index is not None:
            return index
        try:
            index = FrameIndex.from_json(await services.sidecars.read_frames(copy.key))
        except BlobNotFoundError as exc:  # deleted a moment ago
            raise not_found("the instance is no longer stored") from exc
        with contextlib.suppress(ValueError):  # larger than the whole budget: not cached
            self._entries[copy] = index
        return index


def _weight(index: FrameIndex) -> int:
    return max(1, index.number_of_frames)


frame_indexes = FrameIndexCache()


def parse_frame_list(text: str, max_frames: int) -> list[int]:
    """``"1,3,5"`` → [1, 3, 5]; frame numbers start at 1 (PS3.18 §8.3.5.1). At most
    ``max_frames`` numbers, a repeated one counting each time (each is sent again)."""
    pieces = text.split(",", max_frames)
    if len(pieces) > max_frames:
        raise bad_request(f"the frame list asks for more than {max_frames} frames (DICOMWEB_MAX_FRAMES); "
                          "ask for fewer per request")
    numbers = []
    for piece in pieces:
        number = parse_ascii_int(piece)
        if number is None or number < 1:
            raise bad_request(f"frame number {piece[:20]!r} is not a positive integer (frames start at 1)")
        numbers.append(number)
    return numbers


async def stored_frame(services: Services, key: str, index: FrameIndex, number: int) -> bytes:
    """Frame ``number`` as stored: one ranged read (or pydicom for unindexable files, such
    as deflated ones, up to ``DICOMWEB_TRANSCODE_MAX_BYTES``: pydicom reads them whole)."""
    name = layout.file_name(key)
    if not index.locatable():
        size, limit = await services.blobs.size(name), services.settings.transcode_max_bytes
        if size > limit:
            raise not_acceptable(f"the frames of this instance cannot be located ({index.warning}) and it is "
                                 f"{size} bytes, more than the {limit} bytes the server reads whole "
                                 "(DICOMWEB_TRANSCODE_MAX_BYTES)")

        def fallback() -> bytes:
            with services.blobs.open_reader(name) as reader:
                return read_frame_fallback(reader, number)

        try:
            return await run_in_threadpool(fallback)
        except InstanceTooLargeError as exc:
            raise HTTPError(413, f"cannot read frame {number}: {exc}") from exc
    start, end = index.frame_span(number)
    data = services.blobs.read_range_now(name, start, end - start)
    if data is None:
        data = await services.blobs.read_range(name, start, end - start)
    return index.frame_from_span(number, data)


async def pixel_attributes(services: Services, key: str) -> dict:
    """The instance's stored metadata (DICOM JSON), which holds what decoding needs."""
    return json.loads(await services.sidecars.read_metadata(key))


def _converted(attributes: dict, source: str, frame: bytes, plan: Plan) -> bytes:
    """The stored frame decoded, then made native little endian or encoded in the media
    type asked for. Only this frame is decoded, never the whole instance."""
    pixels = decode_frame(attributes, source, frame)
    if plan.media_type == OCTET_STREAM:
        return native_bytes(pixels, attributes)
    return encode_frame(pixels, plan.media_type)


async def frame_bytes(services: Services, copy: StoredCopy, index: FrameIndex, number: int, plan: Plan) -> bytes:
    """Frame ``number`` in the representation of ``plan`` (stored bytes when they are it)."""
    frame = await stored_frame(services, copy.key, index, number)
    source = frame_transfer_syntax(index.transfer_syntax_uid)
    if same_frame_bytes(source, plan.transfer_syntax):
        return frame
    attributes = await pixel_attributes(services, copy.key)
    try:
        return await run_in_threadpool(_converted, attributes, source, frame, plan)
    except (NotImplementedError, RuntimeError, ValueError) as exc:
        raise not_acceptable(f"cannot convert frame {number} to {plan.media_type}: {exc}") from exc


def sent_syntax(plan: Plan, index: FrameIndex) -> str:
    """The transfer syntax the frames are sent in: the plan's, or the frames' own."""
    return plan.transfer_syntax or frame_transfer_syntax(index.transfer_syntax_uid)


def _part_type(plan: Plan, index: FrameIndex) -> str:
    return f"{plan.media_type}; transfer-syntax={sent_syntax(plan, index)}"


async def _multipart_frames(services: Services, copy: StoredCopy, index: FrameIndex, numbers: list[int],
                            plan: Plan, boundary: str) -> AsyncIterator[bytes]:
    """The multipart body, frame by frame; the first frame is made before returning, so
    a frame that cannot be converted is a 406 rather than a broken response."""
    header = multipart.part_header(boundary, _part_type(plan, index))
    first = await frame_bytes(services, copy, index, numbers[0], plan)  # errors before the response starts
    return _stream(services, copy, index, numbers, plan, header, first, boundary)


async def _stream(services: Services, copy: StoredCopy, index: FrameIndex, numbers: list[int], plan: Plan,
                  header: bytes, first: bytes, boundary: str) -> AsyncIterator[bytes]:
    yield header + first + multipart.CRLF
    for number in numbers[1:]:
        yield header + await frame_bytes(services, copy, index, number, plan) + multipart.CRLF
    yield multipart.closing(boundary)


def _multipart_type(plan: Plan, index: FrameIndex, boundary: str) -> str:
    return multipart.multipart_content_type(plan.media_type, boundary, sent_syntax(plan, index))


async def retrieve_frames(request: Request) -> Response:
    services = services_of(request)
    numbers = parse_frame_list(request.path_params["frames"], services.settings.max_frames)
    copy = await locate(services, request)
    index = await frame_indexes.get(services, copy)
    beyond = [n for n in numbers if n > index.number_of_frames]
    if beyond:
        raise not_found(f"frame {beyond[0]} does not exist: the instance has {index.number_of_frames} frame(s)")
    plan = negotiate_frames(request.headers.get("accept"), frame_transfer_syntax(index.transfer_syntax_uid),
                            len(numbers))
    if not plan.multipart:
        body = await frame_bytes(services, copy, index, numbers[0], plan)
        return Response(body, media_type=_part_type(plan, index))
    boundary = multipart.new_boundary()
    parts = await _multipart_frames(services, copy, index, numbers, plan, boundary)
    if len(numbers) == 1:  # small enough to answer in one piece (with a Content-Length)
        return Response(b"".join([part async for part in parts]), media_type=_multipart_type(plan, index, boundary))
    return StreamingResponse(parts, media_type=_multipart_type(plan, index, boundary))
