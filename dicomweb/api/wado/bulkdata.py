"""Retrieve bulk data (PS3.18 §10.4.1.1.5): the targets of the BulkDataURIs in metadata.

The path after ``bulkdata/`` is the one :func:`dicomcore.dicomjson.to_dicom_json` wrote.
Pixel data is served from the frame index (native: the whole value; encapsulated: one
part per frame); any other element is read from the stored header.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from pydicom import dcmread
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from dicomcore import layout
from dicomcore.dicomjson import element_at_path
from dicomcore.instance import InstanceTooLargeError, check_readable_size
from dicomweb.api.context import Services, services_of
from dicomweb.api.wado.frames import StoredCopy, frame_indexes, stored_frame
from dicomweb.api.wado.lookup import find_instance
from dicomweb.api.wado.negotiate import OCTET_STREAM, natural_frame_type
from dicomweb.http import multipart
from dicomweb.http.errors import HTTPError, not_found
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


async def _pixel_parts(services: Services, record: InstanceRecord) -> AsyncIterator[tuple[str, bytes]]:
    index = await frame_indexes.get(services, StoredCopy(record.instance_key, record.incarnation))
    if index.locatable() and not index.encapsulated and index.pixel_data_length is not None:
        assert index.pixel_data_offset is not None
        data = await services.blobs.read_range(
            layout.file_name(record.instance_key), index.pixel_data_offset, index.pixel_data_length)
        yield OCTET_STREAM, data
        return
    part_type = natural_frame_type(record.transfer_syntax_uid)
    for number in range(1, index.number_of_frames + 1):
        yield part_type, await stored_frame(services, record.instance_key, index, number)


async def _started(parts: AsyncIterator[tuple[str, bytes]]) -> AsyncIterator[tuple[str, bytes]]:
    """``parts`` with the first made now, so that a part that cannot be read (a frame of a
    deflated instance over the inflate limit: 413) is an error status, not a cut body."""
    first = await anext(parts, None)

    async def chained() -> AsyncIterator[tuple[str, bytes]]:
        if first is not None:
            yield first
        async for part in parts:
            yield part

    return chained()


async def _body(parts: AsyncIterator[tuple[str, bytes]], syntax: str, boundary: str) -> AsyncIterator[bytes]:
    async for part_type, data in parts:
        yield multipart.part_header(boundary, f"{part_type}; transfer-syntax={syntax}") + data + multipart.CRLF
    yield multipart.closing(boundary)


async def retrieve_bulkdata(request: Request) -> Response:
    services = services_of(request)
    record = await find_instance(services, request)
    path = request.path_params["path"].strip("/").upper()
    boundary = multipart.new_boundary()
    syntax = record.transfer_syntax_uid
    if path in PIXEL_DATA_TAGS:
        parts = await _started(_pixel_parts(services, record))
        part_type = natural_frame_type(syntax)
    else:
        data = await run_in_threadpool(_element_bytes, services, record, path)

        async def one() -> AsyncIterator[tuple[str, bytes]]:
            yield OCTET_STREAM, data

        parts, part_type = one(), OCTET_STREAM
    return StreamingResponse(_body(parts, syntax, boundary),
                             media_type=multipart.multipart_content_type(part_type, boundary))
