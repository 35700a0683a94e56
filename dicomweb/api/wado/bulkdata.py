"""Retrieve bulk data (PS3.18 §10.4.1.1.5): the targets of the BulkDataURIs in metadata.

The path after ``bulkdata/`` is the one :func:`dicomcore.dicomjson.to_dicom_json` wrote.
Pixel data is served from the frame index (native: the whole value; encapsulated: one
part per frame); any other element is read from the stored header.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Iterator

from pydicom import dcmread
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from dicomcore import layout
from dicomcore.dicomjson import element_at_path
from dicomcore.frames import frame_transfer_syntax
from dicomcore.instance import InstanceTooLargeError, check_readable_size
from dicomcore.transcode import decoded_pixel_bytes
from dicomweb.api.context import Services, services_of
from dicomweb.api.wado.frames import copy_of, frame_bytes, sent_syntax
from dicomweb.api.wado.lookup import find_instance
from dicomweb.api.wado.negotiate import OCTET_STREAM, negotiate_frames, same_frame_bytes
from dicomweb.http import multipart
from dicomweb.http.errors import HTTPError, not_acceptable, not_found
from indexing.port import InstanceRecord

PIXEL_DATA_TAGS = {"7FE00010", "7FE00008", "7FE00009"}
BULK_DATA_VRS = {"OB", "OD", "OF", "OL", "OV", "OW", "UN", "OB or OW", "US or OW", "US or SS or OW"}
"""The VRs whose values metadata can give as a BulkDataURI (binary values)."""


def _element_bytes(services: Services, record: InstanceRecord, path: str) -> bytes:
    with services.blobs.open_reader(layout.file_name(record.instance_key)) as reader:
        try:
            check_readable_size(reader)
        except InstanceTooLargeError as exc:
            raise HTTPError(413, f"cannot read bulk data of instance {record.sop_uid}: {exc}") from exc
        dataset = dcmread(reader, stop_before_pixels=True)
    try:
        element = element_at_path(dataset, path)
    except KeyError as exc:
        raise not_found(f"no bulk data at {path!r} in instance {record.sop_uid}") from exc
    value = element.value
    if element.VR not in BULK_DATA_VRS or not isinstance(value, bytes | None):
        # Text and numbers are in the metadata itself; only binary values are bulk data.
        raise not_found(f"the element at {path!r} is not bulk data (VR {element.VR}); read it from the metadata")
    return value or b""


async def _pixel_parts(services: Services, record: InstanceRecord, accept: str | None
                       ) -> tuple[str, str, AsyncIterator[bytes]]:
    """Pixel data negotiated as frames are (PS3.18 §8.7.3: ``application/octet-stream``
    means uncompressed little endian): the part type, the syntax sent, and the parts."""
    copy = await copy_of(services, record)
    index = copy.index
    if index.number_of_frames == 0:
        raise not_found(f"instance {record.sop_uid} has no pixel data")
    source = frame_transfer_syntax(record.transfer_syntax_uid)
    frames = range(1, index.number_of_frames + 1)
    plan = negotiate_frames(accept, source, index.number_of_frames)
    syntax = sent_syntax(plan, index)
    if plan.media_type != OCTET_STREAM:  # compressed frames, one part each
        return plan.media_type, syntax, _each(frame_bytes(services, copy, n, plan) for n in frames)
    if same_frame_bytes(source, plan.transfer_syntax) and index.locatable() and index.pixel_data_length is not None:
        assert index.pixel_data_offset is not None
        whole = services.blobs.read_range(
            layout.file_name(record.instance_key), index.pixel_data_offset, index.pixel_data_length)
        return OCTET_STREAM, syntax, _each(iter([whole]))
    # Native frames made one by one, sent as one value (as native Pixel Data is stored).
    metadata = await services.sidecars.read_metadata(record.instance_key)
    size, limit = decoded_pixel_bytes(json.loads(metadata)), services.settings.transcode_max_bytes
    if size > limit:
        raise not_acceptable(f"the pixel data is {size} bytes decoded, more than the {limit} bytes the server "
                             "converts (DICOMWEB_TRANSCODE_MAX_BYTES); ask transfer-syntax=* for the stored bytes")
    first = await frame_bytes(services, copy, 1, plan)  # a failure is a 406, before the response

    async def whole_value() -> bytes:
        rest = [await frame_bytes(services, copy, n, plan) for n in frames[1:]]
        return b"".join([first, *rest])

    return OCTET_STREAM, syntax, _each(iter([whole_value()]))


async def _each(parts: Iterator[Awaitable[bytes]]) -> AsyncIterator[bytes]:
    for part in parts:
        yield await part


async def _body(parts: AsyncIterator[bytes], part_type: str, boundary: str) -> AsyncIterator[bytes]:
    async for data in parts:
        yield multipart.part_header(boundary, part_type) + data + multipart.CRLF
    yield multipart.closing(boundary)


async def retrieve_bulkdata(request: Request) -> Response:
    services = services_of(request)
    record = await find_instance(services, request)
    path = request.path_params["path"].strip("/").upper()
    boundary = multipart.new_boundary()
    if path in PIXEL_DATA_TAGS:
        media_type, syntax, parts = await _pixel_parts(services, record, request.headers.get("accept"))
    else:
        data = await run_in_threadpool(_element_bytes, services, record, path)
        media_type, syntax = OCTET_STREAM, frame_transfer_syntax(record.transfer_syntax_uid)
        parts = _each(iter([_ready(data)]))
    return StreamingResponse(_body(parts, f"{media_type}; transfer-syntax={syntax}", boundary),
                             media_type=multipart.multipart_content_type(media_type, boundary))


async def _ready(data: bytes) -> bytes:
    return data
