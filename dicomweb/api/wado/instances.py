"""Retrieve study, series or instance (PS3.18 §10.4.1.1.1): files as stored, streamed.

A file is sent byte for byte unless the client asked for Explicit VR Little Endian and
it is stored otherwise; then pydicom rewrites it (decompressing through pylibjpeg).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from io import BytesIO

from pydicom import dcmread
from pydicom.uid import ExplicitVRLittleEndian
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from dicomcore import layout
from dicomweb.api.context import Services, services_of
from dicomweb.api.wado.lookup import find_instances
from dicomweb.api.wado.negotiate import Plan, negotiate_instances
from dicomweb.http import multipart
from indexing.port import InstanceRecord

CHUNK = 4 << 20
"""Bytes read per trip to a worker thread while streaming files (fewer, larger trips)."""


def _transcode(services: Services, record: InstanceRecord) -> bytes:
    """The instance in Explicit VR Little Endian (the only conversion offered)."""
    with services.blobs.open_reader(layout.file_name(record.instance_key)) as reader:
        dataset = dcmread(reader)
    if dataset.file_meta.TransferSyntaxUID.is_compressed:
        dataset.decompress()
    dataset.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    out = BytesIO()
    dataset.save_as(out, enforce_file_format=True, implicit_vr=False, little_endian=True)
    return out.getvalue()


async def _instance_bytes(services: Services, record: InstanceRecord, plan: Plan) -> AsyncIterator[bytes]:
    if plan.transfer_syntax in (None, record.transfer_syntax_uid):
        async for chunk in services.blobs.iter_chunks(layout.file_name(record.instance_key), chunk_size=CHUNK):
            yield chunk
    else:
        yield await run_in_threadpool(_transcode, services, record)


def _part_type(plan: Plan, record: InstanceRecord) -> str:
    return f"{plan.media_type}; transfer-syntax={plan.transfer_syntax or record.transfer_syntax_uid}"


async def _multipart_body(services: Services, records: list[InstanceRecord], plan: Plan, boundary: str
                          ) -> AsyncIterator[bytes]:
    for record in records:
        yield multipart.part_header(boundary, _part_type(plan, record))
        async for chunk in _instance_bytes(services, record, plan):
            yield chunk
        yield multipart.CRLF
    yield multipart.closing(boundary)


async def retrieve_instances(request: Request) -> Response:
    services = services_of(request)
    records = await find_instances(services, request)
    plan = negotiate_instances(request.headers.get("accept"), [r.transfer_syntax_uid for r in records])
    if not plan.multipart:
        record = records[0]
        headers = {}
        if plan.transfer_syntax in (None, record.transfer_syntax_uid):
            headers["Content-Length"] = str(record.size)
        return StreamingResponse(_instance_bytes(services, record, plan), media_type=_part_type(plan, record),
                                 headers=headers)
    boundary = multipart.new_boundary()
    return StreamingResponse(
        _multipart_body(services, records, plan, boundary),
        media_type=multipart.multipart_content_type(plan.media_type, boundary, plan.transfer_syntax),
    )
