"""Retrieve study, series or instance (PS3.18 §10.4.1.1.1): files streamed, or converted.

A file is sent byte for byte when the transfer syntax it is sent in is the stored one;
otherwise :mod:`dicomcore.transcode` rewrites it as Explicit VR Little Endian. Which
syntax each instance is sent in is decided by :func:`negotiate_instances` (PS3.18
§8.7.3: ``application/dicom`` without a transfer-syntax means Explicit VR Little Endian,
lossy data excepted). Every conversion is checked before the status line is sent: its
size against ``DICOMWEB_TRANSCODE_MAX_BYTES``, and the first one is made in full, so a
conversion that cannot be done is a 406 rather than a cut connection.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from dicomcore import layout
from dicomcore.transcode import TranscodeError, decoded_pixel_bytes, to_explicit_little_endian
from dicomweb.api.context import Services, services_of
from dicomweb.api.wado.lookup import find_instances
from dicomweb.api.wado.negotiate import Plan, is_compressed, negotiate_instances
from dicomweb.http import multipart
from dicomweb.http.errors import not_acceptable
from indexing.port import InstanceRecord

CHUNK = 4 << 20
"""Bytes read per trip to a worker thread while streaming files (fewer, larger trips)."""


def _transcode(services: Services, record: InstanceRecord) -> bytes:
    with services.blobs.open_reader(layout.file_name(record.instance_key)) as reader:
        return to_explicit_little_endian(reader)


async def _converted(services: Services, record: InstanceRecord) -> bytes:
    try:
        return await run_in_threadpool(_transcode, services, record)
    except TranscodeError as exc:
        raise not_acceptable(f"instance {record.sop_uid}: {exc}") from exc


async def _check_sizes(services: Services, records: list[InstanceRecord]) -> None:
    """406 unless every instance to convert fits the limit, stored and decoded (the
    decoded size comes from the stored metadata, read in one batch)."""
    limit = services.settings.transcode_max_bytes
    advice = "; ask transfer-syntax=* for the stored bytes"
    for record in records:
        if record.size > limit:
            raise not_acceptable(f"instance {record.sop_uid} is {record.size} bytes, more than the "
                                 f"{limit} bytes the server converts (DICOMWEB_TRANSCODE_MAX_BYTES){advice}")
    compressed = [r for r in records if is_compressed(r.transfer_syntax_uid)]
    metadata = await services.sidecars.read_metadata_many([r.instance_key for r in compressed])
    for record, raw in zip(compressed, metadata, strict=True):
        size = decoded_pixel_bytes(json.loads(raw))
        if size > limit:
            raise not_acceptable(f"instance {record.sop_uid} decompresses to {size} bytes, more than the "
                                 f"{limit} bytes the server converts (DICOMWEB_TRANSCODE_MAX_BYTES){advice}")


async def _stored_bytes(services: Services, record: InstanceRecord) -> AsyncIterator[bytes]:
    async for chunk in services.blobs.iter_chunks(layout.file_name(record.instance_key), chunk_size=CHUNK):
        yield chunk


def _part_type(media_type: str, syntax: str) -> str:
    return f"{media_type}; transfer-syntax={syntax}"


async def _multipart_body(services: Services, records: list[InstanceRecord], targets: list[str], plan: Plan,
                          boundary: str, first: bytes | None) -> AsyncIterator[bytes]:
    for position, (record, target) in enumerate(zip(records, targets, strict=True)):
        yield multipart.part_header(boundary, _part_type(plan.media_type, target))
        if target == record.transfer_syntax_uid:
            async for chunk in _stored_bytes(services, record):
                yield chunk
        else:
            yield first if position == 0 and first is not None else await _converted(services, record)
        yield multipart.CRLF
    yield multipart.closing(boundary)


async def retrieve_instances(request: Request) -> Response:
    services = services_of(request)
    records = await find_instances(services, request)
    plan, targets = negotiate_instances(request.headers.get("accept"), [r.transfer_syntax_uid for r in records])
    to_convert = [r for r, t in zip(records, targets, strict=True) if t != r.transfer_syntax_uid]
    await _check_sizes(services, to_convert)
    first = await _converted(services, records[0]) if records[0] in to_convert else None
    if not plan.multipart:
        record, target = records[0], targets[0]
        media_type = _part_type(plan.media_type, target)
        if first is not None:
            return Response(first, media_type=media_type)
        return StreamingResponse(_stored_bytes(services, record), media_type=media_type,
                                 headers={"Content-Length": str(record.size)})
    boundary = multipart.new_boundary()
    return StreamingResponse(
        _multipart_body(services, records, targets, plan, boundary, first),
        media_type=multipart.multipart_content_type(plan.media_type, boundary, plan.transfer_syntax),
    )
