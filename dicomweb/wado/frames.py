"""Retrieve frames (PS3.18 §10.4.1.1.3): index lookup, frame range, one ranged read.

The frame index (where each frame's bytes lie in the stored file) was computed at STOW;
it is cached here per stored copy, so a hot instance costs one index lookup and one
read per frame. No decoding unless the client asks for native frames of a compressed
instance. Files whose frames could not be located fall back to pydicom reading the file.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from collections.abc import AsyncIterator

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from dicomweb.dicom.frames import FrameIndex
from dicomweb.dicom.instance import read_frame_fallback
from dicomweb.dicom.pixels import decode_frame, encode_frame
from dicomweb.http import multipart
from dicomweb.http.errors import bad_request, not_acceptable, not_found
from dicomweb.services import Services, services_of
from dicomweb.storage import layout
from dicomweb.wado.lookup import find_instance
from dicomweb.wado.negotiate import OCTET_STREAM, Plan, negotiate_frames
from indexing.port import InstanceRecord

CACHE_SIZE = 4096
"""Frame indexes kept in memory (a 100,000-frame slide level is ~2 MB; most are tiny)."""


class FrameIndexCache:
    """A bounded LRU of frame indexes, keyed by stored copy (key + incarnation)."""

    def __init__(self, size: int = CACHE_SIZE) -> None:
        self.size = size
        self._entries: OrderedDict[tuple[str, str], FrameIndex] = OrderedDict()

    async def get(self, services: Services, record: InstanceRecord) -> FrameIndex:
        key = (record.instance_key, record.incarnation)
        index = self._entries.get(key)
        if index is not None:
            self._entries.move_to_end(key)
            return index
        raw = await services.blobs.get_bytes(layout.frames_name(record.instance_key))
        index = FrameIndex.from_json(json.loads(raw))
        self._entries[key] = index
        if len(self._entries) > self.size:
            self._entries.popitem(last=False)
        return index


frame_indexes = FrameIndexCache()


def parse_frame_list(text: str) -> list[int]:
    """``"1,3,5"`` → [1, 3, 5]; frame numbers start at 1 (PS3.18 §8.3.5.1)."""
    numbers = []
    for piece in text.split(","):
        piece = piece.strip()
        if not piece.isdigit() or int(piece) < 1:
            raise bad_request(f"frame number {piece!r} in {text!r} is not a positive integer (frames start at 1)")
        numbers.append(int(piece))
    return numbers


async def stored_frame(services: Services, record: InstanceRecord, index: FrameIndex, number: int) -> bytes:
    name = layout.file_name(record.instance_key)
    if not index.locatable():
        def fallback() -> bytes:
            with services.blobs.open_reader(name) as reader:
                return read_frame_fallback(reader, number)

        return await run_in_threadpool(fallback)
    start, end = index.frame_span(number)
    data = services.blobs.read_range_now(name, start, end - start)
    if data is None:
        data = await services.blobs.read_range(name, start, end - start)
    return index.frame_from_span(number, data)


async def pixel_attributes(services: Services, record: InstanceRecord) -> dict:
    """The instance's stored metadata (DICOM JSON), which holds what decoding needs."""
    return json.loads(await services.blobs.get_bytes(layout.metadata_name(record.instance_key)))


def _converted(attributes: dict, record: InstanceRecord, frame: bytes, plan: Plan) -> bytes:
    """The stored frame decoded, then left native or encoded in the media type asked for."""
    pixels = decode_frame(attributes, record.transfer_syntax_uid, frame)
    if plan.media_type == OCTET_STREAM:
        return pixels.tobytes()
    return encode_frame(pixels, plan.media_type)


async def _frame(services: Services, record: InstanceRecord, index: FrameIndex, number: int, plan: Plan) -> bytes:
    frame = await stored_frame(services, record, index, number)
    if plan.transfer_syntax is None:
        return frame
    attributes = await pixel_attributes(services, record)
    try:
        return await run_in_threadpool(_converted, attributes, record, frame, plan)
    except (NotImplementedError, RuntimeError, ValueError) as exc:
        raise not_acceptable(f"cannot convert frame {number} to {plan.media_type}: {exc}") from exc


def _part_type(plan: Plan, record: InstanceRecord) -> str:
    return f"{plan.media_type}; transfer-syntax={plan.transfer_syntax or record.transfer_syntax_uid}"


async def _multipart_frames(services: Services, record: InstanceRecord, index: FrameIndex, numbers: list[int],
                            plan: Plan, boundary: str) -> AsyncIterator[bytes]:
    """The multipart body, frame by frame; the first frame is made before returning, so
    a frame that cannot be converted is a 406 rather than a broken response."""
    header = multipart.part_header(boundary, _part_type(plan, record))
    first = await _frame(services, record, index, numbers[0], plan)  # errors before the response starts
    return _stream(services, record, index, numbers, plan, header, first, boundary)


async def _stream(services: Services, record: InstanceRecord, index: FrameIndex, numbers: list[int], plan: Plan,
                  header: bytes, first: bytes, boundary: str) -> AsyncIterator[bytes]:
    yield header + first + multipart.CRLF
    for number in numbers[1:]:
        yield header + await _frame(services, record, index, number, plan) + multipart.CRLF
    yield multipart.closing(boundary)


def _multipart_type(plan: Plan, record: InstanceRecord, boundary: str) -> str:
    syntax = plan.transfer_syntax or record.transfer_syntax_uid
    return multipart.multipart_content_type(plan.media_type, boundary, syntax)


async def retrieve_frames(request: Request) -> Response:
    services = services_of(request)
    numbers = parse_frame_list(request.path_params["frames"])
    record = await find_instance(services, request)
    index = await frame_indexes.get(services, record)
    beyond = [n for n in numbers if n > index.number_of_frames]
    if beyond:
        raise not_found(f"frame {beyond[0]} does not exist: the instance has {index.number_of_frames} frame(s)")
    plan = negotiate_frames(request.headers.get("accept"), record.transfer_syntax_uid, len(numbers))
    if not plan.multipart:
        body = await _frame(services, record, index, numbers[0], plan)
        return Response(body, media_type=_part_type(plan, record))
    boundary = multipart.new_boundary()
    parts = await _multipart_frames(services, record, index, numbers, plan, boundary)
    if len(numbers) == 1:  # small enough to answer in one piece (with a Content-Length)
        return Response(b"".join([part async for part in parts]), media_type=_multipart_type(plan, record, boundary))
    return StreamingResponse(parts, media_type=_multipart_type(plan, record, boundary))
