"""Retrieve bodies sent by the server's zero-copy extension (:mod:`dicomweb.http.file_spans`):
instance files opened in batches and handed over open, their bytes never read into Python.

Used for instances sent as stored, under ``dicomweb serve`` on a local store; the streaming
path of :mod:`dicomweb.api.wado.instances` does the rest and puts the same bytes on the
wire (part headers, CRLFs and the closing delimiter alike).

Batches bound what one request holds: at most :data:`BATCH` open files, and one worker
thread trip opens them all (not one trip per file).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

from dicomcore import layout
from dicomweb.api.context import Services
from dicomweb.http import multipart
from dicomweb.http.errors import not_found
from dicomweb.http.file_spans import FileSpan, Pieces
from dicomweb.storage.port import LocalFile
from indexing.port import InstanceRecord

BATCH = 16
"""Instances opened per worker-thread trip, and handed to the server per message."""

Opened = list[LocalFile | None]
"""A batch of instance files, open (``None``: the file is gone)."""


async def _open(services: Services, records: list[InstanceRecord]) -> Opened | None:
    return await services.blobs.open_local([layout.file_name(record.instance_key) for record in records])


def _close(files: Opened) -> None:
    for file in files:
        if file is not None:
            file.handle.close()


async def first_present(services: Services, records: list[InstanceRecord]
                        ) -> tuple[list[InstanceRecord], Opened] | None:
    """From the first instance whose file is there: the records, and the first batch of them
    open; records of vanished files before it are removed (repair), and a 404 when no file
    is left. ``None`` when the store has no local files (stream instead)."""
    for start in range(0, len(records), BATCH):
        files = await _open(services, records[start:start + BATCH])
        if files is None:
            return None
        present = next((i for i, file in enumerate(files) if file is not None), None)
        if present is not None:
            try:
                await services.delete.drop_vanished(records[:start + present])
            except BaseException:
                _close(files)
                raise
            return records[start + present:], files[present:]
    await services.delete.drop_vanished(records)
    raise not_found("the instance files are gone (removed outside the server); their index records were removed")


async def one_file(file: LocalFile) -> AsyncIterator[Pieces]:
    """A single-part body: the whole file (closed once sent)."""
    try:
        yield [FileSpan(file.handle, 0, file.size)]
    finally:
        file.handle.close()


async def multipart_body(services: Services, records: list[InstanceRecord], first: Opened, boundary: str,
                         part_type: Callable[[InstanceRecord], str]) -> AsyncIterator[Pieces]:
    """The multipart body of ``records`` (``first``: the first of them, open), in stretches
    of up to :data:`BATCH` instances. An instance whose file is gone is left out whole, and
    its record removed at the end."""
    vanished = []
    separator = b""  # the CRLF ending the previous part goes out with the next header
    position = 0
    while position < len(records):
        group = records[position:position + len(first)] if position == 0 else records[position:position + BATCH]
        files = first if position == 0 else await _open(services, group)
        assert files is not None  # the store had local files for the first batch
        try:
            pieces: Pieces = []
            for record, file in zip(group, files, strict=True):
                if file is None:
                    vanished.append(record)
                    continue
                header = multipart.part_header(boundary, part_type(record))
                pieces += [separator + header, FileSpan(file.handle, 0, file.size)]
                separator = multipart.CRLF
            if pieces:
                yield pieces
        finally:
            _close(files)
        position += len(group)
    yield [separator + multipart.closing(boundary)]
    if vanished:
        await services.delete.drop_vanished(vanished)
