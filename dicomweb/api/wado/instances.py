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

Under ``dicomweb serve`` (plain HTTP), a file sent as stored is handed to the server as an
open file and goes to the socket with ``os.sendfile`` (:mod:`dicomweb.http.file_spans`):
no read into Python, no copy per chunk. Elsewhere (the Functions adapter, TestClient, Blob
Storage) it is streamed in chunks; the bytes on the wire are the same either way.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncGenerator, AsyncIterator
from typing import cast

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from dicomcore import layout
from dicomcore.transcode import TranscodeError, decoded_pixel_bytes, to_explicit_little_endian
from dicomweb.api.context import Services, services_of
from dicomweb.api.wado.lookup import find_instances
from dicomweb.api.wado.negotiate import Plan, is_compressed, negotiate_instances
from dicomweb.http import file_spans, multipart
from dicomweb.http.errors import not_acceptable, not_found
from dicomweb.http.file_spans import FileSpan, SpanResponse
from dicomweb.storage.port import BlobNotFoundError, LocalFile
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


Body = bytes | AsyncIterator[bytes] | LocalFile
"""An instance ready to send: its converted bytes, its stored bytes with the file open, or
the open file itself (for zero-copy sending)."""


async def _ready(services: Services, record: InstanceRecord, target: str, zero_copy: bool) -> Body | None:
    """The instance in ``target`` syntax, converted or opened; ``None`` when its file is gone."""
    if target != record.transfer_syntax_uid:
        try:
            return await _converted(services, record)
        except BlobNotFoundError:
            return None
    if zero_copy:
        try:
            local = await services.blobs.open_local(layout.file_name(record.instance_key))
        except (BlobNotFoundError, FileNotFoundError):
            return None
        if local is not None:
            return local
    chunks = _stored_bytes(services, record)
    try:
        first = await chunks.__anext__()
    except StopAsyncIteration:
        first = b""
    except (BlobNotFoundError, FileNotFoundError):
        await chunks.aclose()
        return None
    return _prefixed(first, chunks)


async def _pieces(body: Body) -> AsyncIterator[bytes | FileSpan]:
    """What goes on the wire for one instance; an open file is closed once sent (or when
    the response stops early)."""
    if isinstance(body, bytes):
        yield body
    elif isinstance(body, LocalFile):
        try:
            yield FileSpan(body.handle, 0, body.size)
        finally:
            body.handle.close()
    else:
        async for chunk in body:
            yield chunk


def _part_type(media_type: str, syntax: str) -> str:
    return f"{media_type}; transfer-syntax={syntax}"


async def _multipart_body(services: Services, records: list[InstanceRecord], targets: list[str], plan: Plan,
                          boundary: str, first: Body, zero_copy: bool) -> AsyncIterator[bytes | FileSpan]:
    vanished = []
    for position, (record, target) in enumerate(zip(records, targets, strict=True)):
        body = first if position == 0 else await _ready(services, record, target, zero_copy)
        if body is None:
            vanished.append(record)  # left out whole, never cut short
            continue
        yield multipart.part_header(boundary, _part_type(plan.media_type, target))
        async for piece in _pieces(body):
            yield piece
        yield multipart.CRLF
    yield multipart.closing(boundary)
    if vanished:
        await services.delete.drop_vanished(vanished)


async def _first_present(services: Services, records: list[InstanceRecord], targets: list[str], zero_copy: bool
                         ) -> tuple[list[InstanceRecord], list[str], Body]:
    """From the first instance whose file is there: the records, their targets and that
    instance ready to send; records of vanished files before it are removed (repair). 404
    when no file is left."""
    for position, (record, target) in enumerate(zip(records, targets, strict=True)):
        body = await _ready(services, record, target, zero_copy)
        if body is not None:
            await services.delete.drop_vanished(records[:position])
            return records[position:], targets[position:], body
    await services.delete.drop_vanished(records)
    raise not_found("the instance files are gone (removed outside the server); their index records were removed")


def _streamed(pieces: AsyncIterator[bytes | FileSpan], zero_copy: bool, media_type: str,
              headers: dict[str, str] | None = None) -> Response:
    if zero_copy:
        return SpanResponse(pieces, media_type=media_type, headers=headers)
    # Without zero-copy no instance is opened as a LocalFile, so there are no spans.
    return StreamingResponse(cast(AsyncIterator[bytes], pieces), media_type=media_type, headers=headers)


async def retrieve_instances(request: Request) -> Response:
    services = services_of(request)
    records = await find_instances(services, request)
    plan, targets = negotiate_instances(request.headers.get("accept"), [r.transfer_syntax_uid for r in records])
    to_convert = [r for r, t in zip(records, targets, strict=True) if t != r.transfer_syntax_uid]
    await _check_sizes(services, to_convert)
    zero_copy = file_spans.available(request.scope)
    if not plan.multipart:
        return await _single_part(services, records[0], targets[0], plan, zero_copy)
    records, targets, first = await _first_present(services, records, targets, zero_copy)
    boundary = multipart.new_boundary()
    return _streamed(_multipart_body(services, records, targets, plan, boundary, first, zero_copy), zero_copy,
                     multipart.multipart_content_type(plan.media_type, boundary, plan.transfer_syntax))


async def _single_part(services: Services, record: InstanceRecord, target: str, plan: Plan,
                       zero_copy: bool) -> Response:
    media_type = _part_type(plan.media_type, target)
    _, _, body = await _first_present(services, [record], [target], zero_copy)
    if isinstance(body, bytes):
        return Response(body, media_type=media_type)
    if isinstance(body, LocalFile):
        return _streamed(_pieces(body), zero_copy, media_type, {"Content-Length": str(body.size)})
    headers = {}
    # The size of the file there now, not the one recorded at STOW (the file is open: a
    # file gone meanwhile keeps its bytes until closed; one replaced has a new record).
    with contextlib.suppress(BlobNotFoundError):
        headers["Content-Length"] = str(await services.blobs.size(layout.file_name(record.instance_key)))
    return _streamed(body, zero_copy, media_type, headers)
