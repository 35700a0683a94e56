"""Retrieve frames (PS3.18 §10.4.1.1.3): frame range, one ranged read, validated.

The frame index (where each frame's bytes lie in the stored file) was computed at STOW. It
is cached here per instance with the stored copy it describes: the index record's
incarnation and the blob's version (ETag; a local file's inode and times). A hot GET is one
ranged read made conditional on that version (If-Match), with no index lookup: a blob that
was replaced or removed fails the read, and the GET falls back to the cold path (index
record, frame index: the SQLite index's or a sidecar blob's). The index is asked again once
a cached entry is older than ``DICOMWEB_FRAME_CACHE_TTL_SECONDS``, which bounds how long an instance whose delete
crashed before removing its blob (tombstoned, blob still there) can be served by a process
that cached it (docs/architecture.md, "One frame, from request to bytes").

No decoding unless the client asks for native frames of a compressed instance. Files whose
frames could not be located fall back to pydicom reading the file.
"""

from __future__ import annotations

import contextlib
import json
import time
import weakref
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
from dicomweb.storage.port import BlobChangedError, BlobNotFoundError, BlobStore
from indexing.port import InstanceRecord

CACHE_FRAMES = 1_000_000
"""How many frames' locations the cache holds (~150 bytes each: ~150 MB at most). A slide
level of 100,000 tiles is one entry weighing 100,000; a CT slice weighs 1."""


@dataclass
class StoredCopy:
    """One stored copy of an instance, as a frame read sees it."""

    key: str
    """The instance's blob folder (from its UIDs)."""
    incarnation: str
    """The index record's incarnation when the frame index was read."""
    index: FrameIndex
    version: str | None = None
    """The blob's version, from the first read of it (``None`` before)."""
    checked_at: float = 0.0
    """When (monotonic) the index last confirmed the record."""
    cached: bool = False
    """Taken from the cache (a failed read then retries on the cold path)."""


class CopyGoneError(HTTPError):
    """The blob is no longer the one the copy describes (replaced or removed). A 404 where
    nobody retries; a frame GET whose cached copy it was asks the index again."""

    def __init__(self) -> None:
        super().__init__(404, "the instance is no longer stored")


class FrameIndexCache:
    """A bounded LRU of stored copies by instance key, weighed by frame count."""

    def __init__(self, budget: int = CACHE_FRAMES) -> None:
        self._entries: LRUCache[str, StoredCopy] = LRUCache(maxsize=budget, getsizeof=_weight)

    def get(self, key: str) -> StoredCopy | None:
        return self._entries.get(key)

    def put(self, copy: StoredCopy) -> None:
        with contextlib.suppress(ValueError):  # larger than the whole budget: not cached
            self._entries[copy.key] = copy

    def evict(self, key: str) -> None:
        self._entries.pop(key, None)


def _weight(copy: StoredCopy) -> int:
    return max(1, copy.index.number_of_frames)


_caches: weakref.WeakKeyDictionary[BlobStore, FrameIndexCache] = weakref.WeakKeyDictionary()
"""One cache per blob store (per app): two apps in one process may hold the same UIDs."""


def frame_indexes(services: Services) -> FrameIndexCache:
    cache = _caches.get(services.blobs)
    if cache is None:
        cache = _caches[services.blobs] = FrameIndexCache()
    return cache


async def locate(services: Services, request: Request) -> StoredCopy:
    """The stored copy the URL names: from the cache while its entry is younger than the
    TTL (no index lookup), else from the index record and the derived store's frame index."""
    study, series, sop = path_uids(request)
    assert series is not None and sop is not None
    cache = frame_indexes(services)
    cached = cache.get(layout.instance_key(study, series, sop))
    ttl = services.settings.frame_cache_ttl_seconds
    if cached is not None and cached.version is not None and time.monotonic() - cached.checked_at < ttl:
        return StoredCopy(**{**vars(cached), "cached": True})
    return await copy_of(services, await find_instance(services, request))


async def copy_of(services: Services, record: InstanceRecord) -> StoredCopy:
    """The stored copy of an indexed instance: the cached one when it describes this
    incarnation (its blob version is still checked by each read), else read afresh."""
    cache = frame_indexes(services)
    cached = cache.get(record.instance_key)
    now = time.monotonic()
    if cached is not None and cached.incarnation == record.incarnation:
        cached.checked_at = now
        return StoredCopy(**{**vars(cached), "cached": True})
    try:
        index = FrameIndex.from_json(await services.sidecars.read_frames(record.instance_key))
    except BlobNotFoundError as exc:  # deleted a moment ago
        cache.evict(record.instance_key)
        raise not_found("the instance is no longer stored") from exc
    return StoredCopy(record.instance_key, record.incarnation, index, checked_at=now)


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


async def stored_frame(services: Services, copy: StoredCopy, number: int) -> bytes:
    """Frame ``number`` as stored: one ranged read, conditional on the copy's blob version
    (or pydicom for unindexable files, such as deflated ones, up to
    ``DICOMWEB_TRANSCODE_MAX_BYTES``: pydicom reads them whole). Raises
    :class:`CopyGoneError` (and forgets the copy) when the blob was replaced or removed."""
    name, index = layout.file_name(copy.key), copy.index
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
    try:
        data, version = await services.blobs.read_range_versioned(name, start, end - start, copy.version)
    except (BlobChangedError, BlobNotFoundError) as exc:
        frame_indexes(services).evict(copy.key)
        raise CopyGoneError() from exc
    if copy.version is None:  # the first read of this copy: from now on, reads are conditional on it
        copy.version = version
        frame_indexes(services).put(StoredCopy(**{**vars(copy), "cached": False}))
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


async def frame_bytes(services: Services, copy: StoredCopy, number: int, plan: Plan) -> bytes:
    """Frame ``number`` in the representation of ``plan`` (stored bytes when they are it)."""
    frame = await stored_frame(services, copy, number)
    source = frame_transfer_syntax(copy.index.transfer_syntax_uid)
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


async def _stream(services: Services, copy: StoredCopy, numbers: list[int], plan: Plan,
                  header: bytes, first: bytes, boundary: str) -> AsyncIterator[bytes]:
    yield header + first + multipart.CRLF
    for number in numbers[1:]:
        yield header + await frame_bytes(services, copy, number, plan) + multipart.CRLF
    yield multipart.closing(boundary)


def _multipart_type(plan: Plan, index: FrameIndex, boundary: str) -> str:
    return multipart.multipart_content_type(plan.media_type, boundary, sent_syntax(plan, index))


async def _answer(services: Services, request: Request, copy: StoredCopy, numbers: list[int]) -> Response:
    """The response for ``copy``; its first frame is read before the response starts, so a
    frame that cannot be converted is a 406 (and a replaced blob a retry) rather than a
    broken response."""
    index = copy.index
    beyond = [n for n in numbers if n > index.number_of_frames]
    if beyond:
        raise not_found(f"frame {beyond[0]} does not exist: the instance has {index.number_of_frames} frame(s)")
    plan = negotiate_frames(request.headers.get("accept"), frame_transfer_syntax(index.transfer_syntax_uid),
                            len(numbers))
    first = await frame_bytes(services, copy, numbers[0], plan)
    if not plan.multipart:
        return Response(first, media_type=_part_type(plan, index))
    boundary = multipart.new_boundary()
    header = multipart.part_header(boundary, _part_type(plan, index))
    parts = _stream(services, copy, numbers, plan, header, first, boundary)
    if len(numbers) == 1:  # small enough to answer in one piece (with a Content-Length)
        return Response(b"".join([part async for part in parts]), media_type=_multipart_type(plan, index, boundary))
    return StreamingResponse(parts, media_type=_multipart_type(plan, index, boundary))


async def retrieve_frames(request: Request) -> Response:
    services = services_of(request)
    numbers = parse_frame_list(request.path_params["frames"], services.settings.max_frames)
    copy = await locate(services, request)
    try:
        return await _answer(services, request, copy, numbers)
    except CopyGoneError:
        if not copy.cached:
            raise
    # The cached copy's blob was replaced or removed: ask the index (a deleted instance is
    # a 404 there; a re-stored one has a new frame index).
    return await _answer(services, request, await copy_of(services, await find_instance(services, request)), numbers)
