"""Retrieve study, series or instance (PS3.18 §10.4.1.1.1): files streamed, or converted.

A file is sent byte for byte when the transfer syntax it is sent in is the stored one;
otherwise :mod:`dicomcore.transcode` rewrites it as Explicit VR Little Endian. Which
syntax each instance is sent in is decided by :func:`negotiate_instances` (PS3.18
§8.7.3: ``application/dicom`` without a transfer-syntax means Explicit VR Little Endian,
lossy data excepted). Every conversion is checked before the status line is sent: its
size against ``DICOMWEB_TRANSCODE_MAX_BYTES``, and the first one is made in full, so a
conversion that cannot be done is a 406 rather than a cut connection. Likewise a stored
file is opened (its first chunk read) and sized before its status line or part header: a
file gone behind the server's back is a 404 (or a part left out whole), and its record is
removed then, with a delete entry (``DeleteInstances.drop_vanished``).
"""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator, AsyncIterator

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from dicomcore import layout
from dicomcore.transcode import TranscodeError, decoded_pixel_bytes, to_explicit_little_endian
from dicomweb.api.context import Services, services_of
from dicomweb.api.wado.lookup import find_instances
from dicomweb.api.wado.negotiate import Plan, is_compressed, negotiate_instances
from dicomweb.http import multipart
from dicomweb.http.errors import not_acceptable, not_found
from dicomweb.storage.port import BlobNotFoundError
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


async def _stored_bytes(services: Services, record: InstanceRecord) -> AsyncGenerator[bytes, None]:
    async for chunk in services.blobs.iter_chunks(layout.file_name(record.instance_key), chunk_size=CHUNK):
        yield chunk


async def _opened(services: Services, record: InstanceRecord) -> AsyncIterator[bytes] | None:
    """The stored file with its first chunk already read, so that a status line (or part
    header) is only sent for a file that is there; ``None`` when it is gone."""
    chunks = _stored_bytes(services, record)
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


def _part_type(media_type: str, syntax: str) -> str:
    return f"{media_type}; transfer-syntax={syntax}"


async def _multipart_body(services: Services, records: list[InstanceRecord], targets: list[str], plan: Plan,
                          boundary: str, first: bytes | None, opened: AsyncIterator[bytes] | None
                          ) -> AsyncIterator[bytes]:
    vanished = []
    for position, (record, target) in enumerate(zip(records, targets, strict=True)):
        if target == record.transfer_syntax_uid:
            chunks = opened if position == 0 and opened is not None else await _opened(services, record)
            if chunks is None:
                vanished.append(record)  # left out whole, never cut short
                continue
            yield multipart.part_header(boundary, _part_type(plan.media_type, target))
            async for chunk in chunks:
                yield chunk
        else:
            yield multipart.part_header(boundary, _part_type(plan.media_type, target))
            yield first if position == 0 and first is not None else await _converted(services, record)
        yield multipart.CRLF
    yield multipart.closing(boundary)
    if vanished:
        await services.delete.drop_vanished(vanished)


async def _first_stored_present(services: Services, records: list[InstanceRecord], targets: list[str]
                                ) -> tuple[list[InstanceRecord], list[str], AsyncIterator[bytes] | None]:
    """Records and targets from the first instance that can be sent (a stored file that
    is there, opened, or a conversion); the vanished ones before it are removed. 404 when
    none is left."""
    while records:
        if targets[0] != records[0].transfer_syntax_uid:
            return records, targets, None
        opened = await _opened(services, records[0])
        if opened is not None:
            return records, targets, opened
        await services.delete.drop_vanished(records[:1])
        records, targets = records[1:], targets[1:]
    raise not_found("the instance files are gone (removed outside the server); their index records were removed")


async def retrieve_instances(request: Request) -> Response:
    services = services_of(request)
    records = await find_instances(services, request)
    plan, targets = negotiate_instances(request.headers.get("accept"), [r.transfer_syntax_uid for r in records])
    to_convert = [r for r, t in zip(records, targets, strict=True) if t != r.transfer_syntax_uid]
    await _check_sizes(services, to_convert)
    records, targets, opened = await _first_stored_present(services, records, targets)
    first = await _converted(services, records[0]) if records[0] in to_convert else None
    if not plan.multipart:
        record, target = records[0], targets[0]
        media_type = _part_type(plan.media_type, target)
        if first is not None:
            return Response(first, media_type=media_type)
        assert opened is not None
        try:  # the size of the file there now, not the one recorded at STOW
            size = await services.blobs.size(layout.file_name(record.instance_key))
        except BlobNotFoundError:
            await services.delete.drop_vanished([record])
            raise not_found(f"the file of instance {record.sop_uid} is gone (removed outside the server); "
                            "its index record was removed") from None
        return StreamingResponse(opened, media_type=media_type, headers={"Content-Length": str(size)})
    boundary = multipart.new_boundary()
    return StreamingResponse(
        _multipart_body(services, records, targets, plan, boundary, first, opened),
        media_type=multipart.multipart_content_type(plan.media_type, boundary, plan.transfer_syntax),
    )
