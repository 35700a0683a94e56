"""Retrieve study, series or instance (PS3.18 §10.4.1.1.1): files as stored, streamed.

A file is sent byte for byte unless the client asked for Explicit VR Little Endian and
it is stored otherwise; then pydicom rewrites it (decompressing through pylibjpeg).
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator
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
from dicomweb.http.errors import not_found
from dicomweb.storage.port import BlobNotFoundError
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


async def _instance_bytes(services: Services, record: InstanceRecord, plan: Plan) -> AsyncGenerator[bytes, None]:
    if plan.transfer_syntax in (None, record.transfer_syntax_uid):
        async for chunk in services.blobs.iter_chunks(layout.file_name(record.instance_key), chunk_size=CHUNK):
            yield chunk
    else:
        yield await run_in_threadpool(_transcode, services, record)


async def _opened(services: Services, record: InstanceRecord, plan: Plan) -> AsyncIterator[bytes] | None:
    """The instance's bytes with the file already open and its first chunk read, so that a
    status line (or a part header) is only sent for a file that is there; ``None`` when
    its file is gone (the caller answers 404 or leaves the part out, and repairs)."""
    chunks = _instance_bytes(services, record, plan)
    try:
        first = await chunks.__anext__()
    except StopAsyncIteration:
        first = b""
    except (BlobNotFoundError, FileNotFoundError):
        await chunks.aclose()
        return None
    return _prefixed(first, chunks)


async def _prefixed(first: bytes, rest: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    if first:
        yield first
    async for chunk in rest:
        yield chunk


def _part_type(plan: Plan, record: InstanceRecord) -> str:
    return f"{plan.media_type}; transfer-syntax={plan.transfer_syntax or record.transfer_syntax_uid}"


async def _multipart_body(services: Services, records: list[InstanceRecord], plan: Plan, boundary: str,
                          first: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    vanished = []
    for number, record in enumerate(records):
        chunks = first if number == 0 else await _opened(services, record, plan)
        if chunks is None:
            vanished.append(record)  # left out whole, never cut short
            continue
        yield multipart.part_header(boundary, _part_type(plan, record))
        async for chunk in chunks:
            yield chunk
        yield multipart.CRLF
    yield multipart.closing(boundary)
    if vanished:
        await services.delete.drop_vanished(vanished)


async def _first_present(services: Services, records: list[InstanceRecord], plan: Plan
                         ) -> tuple[list[InstanceRecord], AsyncIterator[bytes]]:
    """The records from the first whose file is there, and that file opened; records of
    vanished files before it are removed (repair). 404 when no file is left."""
    for number, record in enumerate(records):
        chunks = await _opened(services, record, plan)
        if chunks is not None:
            await services.delete.drop_vanished(records[:number])
            return records[number:], chunks
    await services.delete.drop_vanished(records)
    raise not_found("the instance files are gone (removed outside the server); their index records were removed")


async def retrieve_instances(request: Request) -> Response:
    services = services_of(request)
    records = await find_instances(services, request)
    plan = negotiate_instances(request.headers.get("accept"), [r.transfer_syntax_uid for r in records])
    if not plan.multipart:
        record = records[0]
        headers = {}
        if plan.transfer_syntax in (None, record.transfer_syntax_uid):
            try:  # the size of the file there now, not the one recorded at STOW
                headers["Content-Length"] = str(await services.blobs.size(layout.file_name(record.instance_key)))
            except BlobNotFoundError:
                records = []
        chunks = await _opened(services, record, plan) if records else None
        if chunks is None:
            await services.delete.drop_vanished([record])
            raise not_found(f"the file of instance {record.sop_uid} is gone (removed outside the server); "
                            "its index record was removed")
        return StreamingResponse(chunks, media_type=_part_type(plan, record), headers=headers)
    records, first = await _first_present(services, records, plan)
    boundary = multipart.new_boundary()
    return StreamingResponse(
        _multipart_body(services, records, plan, boundary, first),
        media_type=multipart.multipart_content_type(plan.media_type, boundary, plan.transfer_syntax),
    )
