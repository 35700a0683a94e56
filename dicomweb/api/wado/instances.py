"""Retrieve study, series or instance (PS3.18 §10.4.1.1.1): files streamed, or converted.

A file is sent byte for byte when the transfer syntax it is sent in is the stored one;
otherwise :mod:`dicomcore.transcode` rewrites it as Explicit VR Little Endian. Which
syntax each instance is sent in is decided by :func:`negotiate_instances` (PS3.18
§8.7.3: ``application/dicom`` without a transfer-syntax means Explicit VR Little Endian,
lossy data excepted). Every conversion is checked before the status line is sent: its
size against ``DICOMWEB_TRANSCODE_MAX_BYTES``, and the first one is made in full, so a
conversion that cannot be done is a 406 rather than a cut connection. Likewise a file is
opened (its first chunk read) before its status line or part header is sent: a file gone
behind the server's back is a 404 (or a part left out), never a cut body, and its index
record is removed (``DeleteInstances.drop_vanished``).

Under ``dicomweb serve`` (plain HTTP, a local store), a request whose instances all go out as
stored hands the server open files, whose bytes go to the socket with ``os.sendfile``
(:mod:`dicomweb.api.wado.file_bodies`); elsewhere (the Functions adapter, TestClient, Blob
Storage) files are streamed in chunks. The bytes on the wire are the same either way.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncGenerator, AsyncIterator

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from dicomcore import layout
from dicomcore.transcode import TranscodeError, decoded_pixel_bytes, to_explicit_little_endian
from dicomweb.api.context import Services, services_of
from dicomweb.api.wado import file_bodies
from dicomweb.api.wado.lookup import find_instances
from dicomweb.api.wado.negotiate import Plan, is_compressed, negotiate_instances
from dicomweb.http import file_spans, multipart
from dicomweb.http.errors import not_acceptable, not_found
from dicomweb.http.file_spans import SpanResponse
from dicomweb.storage.port import BlobNotFoundError
from indexing.port import InstanceRecord

CHUNK = 4 << 20
"""Bytes read per trip to a worker thread while streaming files (fewer, larger trips)."""


def _transcode(services: Services, record: InstanceRecord) -> bytes:
    with services.blobs.open_reader(layout.file_name(record.instance_key)) as reader:
        return to_explicit_little_endian(reader)


async def _converted(services: Services, record: InstanceRecord) -> bytes:
    """The converted instance; raises :class:`BlobNotFoundError` when its file is gone."""
    try:
        return await run_in_threadpool(_transcode, services, record)
    except FileNotFoundError as exc:
        raise BlobNotFoundError(record.instance_key) from exc
    except TranscodeError as exc:
        raise not_acceptable(f"instance {record.sop_uid}: {exc}") from exc


async def _check_sizes(services: Services, records: list[InstanceRecord]) -> None:
    """406 unless every instance to convert fits the limit, stored and decoded (the
    decoded size comes from the stored metadata, read in one batch)."""
    if not records:
        return  # nothing to convert: no sidecar read, no worker-thread trip before the first byte
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


async def _prefixed(first: bytes, rest: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    if first:
        yield first
    async for chunk in rest:
        yield chunk


Body = bytes | AsyncIterator[bytes]
"""An instance ready to send: its converted bytes, or its stored bytes with the file open."""


async def _ready(services: Services, record: InstanceRecord, target: str) -> Body | None:
    """The instance in ``target`` syntax, converted or opened; ``None`` when its file is gone."""
    if target != record.transfer_syntax_uid:
        try:
            return await _converted(services, record)
        except BlobNotFoundError:
            return None
    chunks = _stored_bytes(services, record)
    try:
        first = await chunks.__anext__()
    except StopAsyncIteration:
        first = b""
    except (BlobNotFoundError, FileNotFoundError):
        await chunks.aclose()
        return None
    return _prefixed(first, chunks)


def _part_type(media_type: str, syntax: str) -> str:
    return f"{media_type}; transfer-syntax={syntax}"


async def _multipart_body(services: Services, records: list[InstanceRecord], targets: list[str], plan: Plan,
                          boundary: str, first: Body) -> AsyncIterator[bytes]:
    vanished = []
    for position, (record, target) in enumerate(zip(records, targets, strict=True)):
        body = first if position == 0 else await _ready(services, record, target)
        if body is None:
            vanished.append(record)  # left out whole, never cut short
            continue
        yield multipart.part_header(boundary, _part_type(plan.media_type, target))
        if isinstance(body, bytes):
            yield body
        else:
            async for chunk in body:
                yield chunk
        yield multipart.CRLF
    yield multipart.closing(boundary)
    if vanished:
        await services.delete.drop_vanished(vanished)


async def _first_present(services: Services, records: list[InstanceRecord], targets: list[str]
                         ) -> tuple[list[InstanceRecord], list[str], Body]:
    """From the first instance whose file is there: the records, their targets and that
    instance ready to send; records of vanished files before it are removed (repair). 404
    when no file is left."""
    for position, (record, target) in enumerate(zip(records, targets, strict=True)):
        body = await _ready(services, record, target)
        if body is not None:
            await services.delete.drop_vanished(records[:position])
            return records[position:], targets[position:], body
    await services.delete.drop_vanished(records)
    raise not_found("the instance files are gone (removed outside the server); their index records were removed")


async def retrieve_instances(request: Request) -> Response:
    services = services_of(request)
    records = await find_instances(services, request, attributes=False)  # the files are sent, not the headers
    plan, targets = negotiate_instances(request.headers.get("accept"), [r.transfer_syntax_uid for r in records])
    to_convert = [r for r, t in zip(records, targets, strict=True) if t != r.transfer_syntax_uid]
    await _check_sizes(services, to_convert)
    if not to_convert and file_spans.available(request.scope):
        sent = await _zero_copy(services, records, plan)
        if sent is not None:
            return sent
    if not plan.multipart:
        record, target = records[0], targets[0]
        media_type = _part_type(plan.media_type, target)
        headers = {}
        if target == record.transfer_syntax_uid:
            # The size of the file there now, not the one recorded at STOW; a missing file is
            # answered below (_first_present: 404 and repair).
            with contextlib.suppress(BlobNotFoundError):
                headers["Content-Length"] = str(await services.blobs.size(layout.file_name(record.instance_key)))
        _, _, body = await _first_present(services, [record], [target])
        if isinstance(body, bytes):
            return Response(body, media_type=media_type)
        return StreamingResponse(body, media_type=media_type, headers=headers)
    records, targets, first = await _first_present(services, records, targets)
    boundary = multipart.new_boundary()
    return StreamingResponse(
        _multipart_body(services, records, targets, plan, boundary, first),
        media_type=multipart.multipart_content_type(plan.media_type, boundary, plan.transfer_syntax),
    )


async def _zero_copy(services: Services, records: list[InstanceRecord], plan: Plan) -> Response | None:
    """The response with the files handed to the server open (every instance goes as
    stored); ``None`` when the store has no local files."""
    if not plan.multipart:
        records = records[:1]
    started = await file_bodies.first_present(services, records)
    if started is None:
        return None
    records, first = started

    def part_type(record: InstanceRecord) -> str:
        return _part_type(plan.media_type, record.transfer_syntax_uid)  # sent as stored

    if not plan.multipart:
        file = first[0]
        assert file is not None
        return SpanResponse(file_bodies.one_file(file), media_type=part_type(records[0]),
                            headers={"Content-Length": str(file.size)})
    boundary = multipart.new_boundary()
    return SpanResponse(file_bodies.multipart_body(services, records, first, boundary, part_type),
                        media_type=multipart.multipart_content_type(plan.media_type, boundary, plan.transfer_syntax))
