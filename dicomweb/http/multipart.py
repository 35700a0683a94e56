"""multipart/related on the wire: a streaming reader for STOW and a writer for WADO.

The reader uses python-multipart's streaming parser (boundaries found as bytes arrive,
part headers capped in count and size) and spools each part's body to a file, so a
request costs the same memory whatever its size. The writer yields a response body part
by part, never building it whole.
"""

from __future__ import annotations

import hashlib
import os
import re
import uuid
from collections.abc import AsyncIterable, AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser
from starlette.concurrency import run_in_threadpool

CRLF = b"\r\n"


PARTS_HELD = 4
"""Without a shared budget, the parts one reader may hold in memory at once."""

SPOOL_BATCH_BYTES = 1 << 20
"""Received bytes gathered before one write to the spool file (one worker-thread trip)."""


class MultipartError(ValueError):
    """The body is not valid multipart (bad boundary, truncated, oversized part headers)."""


class BodyTooLargeError(ValueError):
    """The body passed the configured size limit."""


class TooManyPartsError(ValueError):
    """The body has more parts than the configured limit."""


_BOUNDARY = re.compile(r"[0-9A-Za-z'()+_,\-./:=? ]{0,69}[0-9A-Za-z'()+_,\-./:=?]")


def valid_boundary(boundary: str) -> bool:
    """RFC 2046 §5.1.1: 1 to 70 characters of ``bchars``, not ending with a space."""
    return _BOUNDARY.fullmatch(boundary) is not None


@dataclass
class MemoryBudget:
    """The STOW part bytes one process may hold in memory at once, over every request (used
    on the event loop only, so no lock): a part that finds it spent is spooled, so memory
    stays bounded whatever the number of clients."""

    limit: int
    held: int = 0

    def take(self, size: int) -> bool:
        if self.held + size > self.limit:
            return False
        self.held += size
        return True

    def give_back(self, size: int) -> None:
        self.held -= size


@dataclass
class SpooledPart:
    """One part of a multipart body: its bytes in memory (:attr:`data`, a part up to the
    in-memory limit) or spooled to a local file (:attr:`path`, a larger one)."""

    headers: dict[str, str]
    path: Path
    """The part's staging path: its spool file, or where a part held in memory is staged
    when it is stored (nothing is written there while it is received)."""
    size: int = 0
    digest: Any = field(default_factory=hashlib.sha256)
    """SHA-256 of the bytes spooled so far: the stored file's checksum, taken on the way in
    (no second read of the file). Not taken for a part held in memory: its store hashes the
    whole buffer in its worker thread (hashlib releases the GIL there)."""
    number: int = 0
    """Its place in the body, from 1."""
    data: bytes | None = None
    """The whole part, when it was held in memory (set when the part ends)."""
    held: list[bytes] = field(default_factory=list)
    """Bytes received so far of a part still held in memory."""
    spooled: bool = False
    """The part outgrew the in-memory limit: its bytes go to :attr:`path`."""
    budget: MemoryBudget | None = None
    """Where the bytes it holds in memory are counted (given back by :meth:`release`)."""

    def release(self) -> None:
        """Drop the bytes held in memory (the part is stored, or abandoned)."""
        if self.budget is not None and not self.spooled:
            self.budget.give_back(self.size)
            self.budget = None
        self.data = None
        self.held.clear()

    @property
    def sha256(self) -> str:
        """The spooled file's SHA-256; empty for a part held in memory (not hashed yet)."""
        return "" if self.data is not None else str(self.digest.hexdigest())

    @property
    def content_type(self) -> str | None:
        return self.headers.get("content-type")


@dataclass
class _PartCollector:
    """python-multipart callbacks, collecting one part at a time (callbacks are synchronous).

    A part is held in memory while it is at most ``memory_limit`` bytes: receiving it then
    costs no worker-thread trip and no file write (its store writes it to disk once). A part
    that grows past the limit is spooled from then on, so memory stays bounded whatever the
    request holds.
    """

    new_path: Callable[[], Path]
    memory_limit: int = 0
    budget: MemoryBudget = field(default_factory=lambda: MemoryBudget(0))
    done: list[SpooledPart] = field(default_factory=list)
    pending: list[tuple[SpooledPart, bytes | None]] = field(default_factory=list)
    """Data to spool and part ends, in arrival order; ``None`` marks a part's end."""
    pending_bytes: int = 0
    part_ended: bool = False
    """A part's end is pending: flush now, so its caller gets it without waiting for more."""
    current: SpooledPart | None = None
    header_field: bytearray = field(default_factory=bytearray)
    header_value: bytearray = field(default_factory=bytearray)
    finished: bool = False
    begun: int = 0
    """Parts begun so far."""

    def callbacks(self) -> dict[str, Callable[..., None]]:
        return {
            "on_part_begin": self.part_begin,
            "on_header_field": lambda d, s, e: self.header_field.extend(d[s:e]),
            "on_header_value": lambda d, s, e: self.header_value.extend(d[s:e]),
            "on_header_end": self.header_end,
            "on_part_data": self.part_data,
            "on_part_end": self.part_end,
            "on_end": self.end,
        }

    def part_begin(self) -> None:
        self.begun += 1
        self.current = SpooledPart(headers={}, path=self.new_path(), number=self.begun, budget=self.budget)

    def header_end(self) -> None:
        assert self.current is not None
        name = self.header_field.decode("latin-1").strip().lower()
        self.current.headers[name] = self.header_value.decode("latin-1").strip()
        self.header_field.clear()
        self.header_value.clear()

    def part_data(self, data: bytes, start: int, end: int) -> None:
        part = self.current
        if end <= start or part is None:
            return
        chunk = data[start:end]  # the received chunk itself (no copy) when the part spans it whole
        if not part.spooled and part.size + len(chunk) <= self.memory_limit and self.budget.take(len(chunk)):
            part.held.append(chunk)
            part.size += len(chunk)
            return
        if not part.spooled:  # outgrew a limit: what it held goes to its file first
            self.budget.give_back(part.size)
            part.spooled, part.size = True, 0  # (the spool's writes count the size from here)
            self._spool(part, b"".join(part.held))
            part.held.clear()
        self._spool(part, chunk)

    def _spool(self, part: SpooledPart, chunk: bytes) -> None:
        if chunk:
            self.pending.append((part, chunk))
            self.pending_bytes += len(chunk)

    def part_end(self) -> None:
        part = self.current
        if part is None:
            return
        if not part.spooled:
            part.data = b"".join(part.held)
            part.held.clear()
        self.pending.append((part, None))
        self.part_ended = True

    def should_flush(self) -> bool:
        # Writing each received chunk (often 64 KB) cost a worker-thread trip each, ~8 per
        # 513 KB instance: a large share of STOW's CPU under the GIL (docs/performance.md).
        return self.part_ended or self.pending_bytes >= SPOOL_BATCH_BYTES

    def end(self) -> None:
        self.finished = True


async def _write(path: Path, chunks: list[bytes], digest: Any) -> int:
    def append() -> int:
        with open(path, "ab") as out:
            for chunk in chunks:
                digest.update(chunk)  # in the worker thread, beside the write: hashlib releases the GIL
            return sum(out.write(chunk) for chunk in chunks)

    return await run_in_threadpool(append)


async def read_parts(
    body: AsyncIterable[bytes], boundary: str, new_path: Callable[[], Path], *, max_bytes: int,
    max_parts: int | None = None, memory_part_bytes: int = 0, budget: MemoryBudget | None = None,
) -> AsyncIterator[SpooledPart]:
    """Yield each part as soon as it is complete: held in memory when it is at most
    ``memory_part_bytes`` and ``budget`` has room for it, else spooled to ``new_path()``.
    The caller calls :meth:`SpooledPart.release` once it has stored a part.

    The caller processes a part before the next is read (back-pressure). Raises
    :class:`MultipartError` for a malformed or truncated body and
    :class:`BodyTooLargeError` past ``max_bytes``, :class:`TooManyPartsError` when a part
    beyond ``max_parts`` begins (once the parts before it are yielded).
    Files of parts not yet yielded are removed on error; the caller owns (and removes) yielded files.
    """
    budget = budget or MemoryBudget(memory_part_bytes * (PARTS_HELD + 1))
    collector = _PartCollector(new_path, memory_part_bytes, budget)
    parser = MultipartParser(boundary, collector.callbacks(), max_header_count=16)  # type: ignore[arg-type]
    received = 0
    part_limit = max_parts if max_parts is not None else float("inf")
    try:
        async for chunk in body:
            received += len(chunk)
            if received > max_bytes:
                raise BodyTooLargeError(f"request body is larger than the {max_bytes}-byte limit")
            try:
                parser.write(chunk)
            except MultipartParseError as exc:
                raise MultipartError(f"malformed multipart body: {exc}") from exc
            over = collector.begun > part_limit
            if over:  # the parts within the limit are handled; nothing beyond it is written
                for part in {id(part): part for part, _ in collector.pending if part.number > part_limit}.values():
                    part.release()
                collector.pending = [(part, data) for part, data in collector.pending if part.number <= part_limit]
            if over or collector.should_flush():
                for part in await _flush(collector):
                    yield part
            if over:
                raise TooManyPartsError(f"the request has more than {max_parts} parts (DICOMWEB_MAX_PARTS)")
        if not collector.finished:
            raise MultipartError(
                "multipart body ended before its closing boundary (truncated request, "
                f"or the boundary is not {boundary!r})"
            )
    finally:
        for part in _not_yielded(collector):
            part.release()
            if part.spooled and part.path.exists():
                os.unlink(part.path)


def _not_yielded(collector: _PartCollector) -> list[SpooledPart]:
    """Parts begun but never handed to the caller (a body cut short, malformed, or past the
    parts limit): their files and held bytes are the reader's to drop."""
    parts = {id(part): part for part, _ in collector.pending}
    if collector.current is not None:
        parts[id(collector.current)] = collector.current
    yielded = {id(part) for part in collector.done}
    return [part for key, part in parts.items() if key not in yielded]


async def _flush(collector: _PartCollector) -> list[SpooledPart]:
    """Write buffered part data to the parts' files; return the parts that ended (a part
    held in memory ends without a write)."""
    completed: list[SpooledPart] = []
    batch: list[bytes] = []
    for index, (part, data) in enumerate(collector.pending):
        if data is not None:
            batch.append(data)
        following = collector.pending[index + 1][0] if index + 1 < len(collector.pending) else None
        if batch and (data is None or following is not part):
            part.size += await _write(part.path, batch, part.digest)
            batch = []
        if data is None:
            collector.done.append(part)
            completed.append(part)
    collector.pending.clear()
    collector.pending_bytes, collector.part_ended = 0, False
    return completed


async def spool_body(body: AsyncIterable[bytes], path: Path, *, max_bytes: int) -> tuple[int, str]:
    """A single-part body to a file. Returns its size and SHA-256."""
    digest = hashlib.sha256()
    size = 0
    batch: list[bytes] = []
    batched = 0
    async for chunk in body:
        size += len(chunk)
        if size > max_bytes:
            raise BodyTooLargeError(f"request body is larger than the {max_bytes}-byte limit")
        batch.append(chunk)
        batched += len(chunk)
        if batched >= SPOOL_BATCH_BYTES:
            await _write(path, batch, digest)
            batch, batched = [], 0
    await _write(path, batch, digest)
    return size, digest.hexdigest()


async def receive_body(body: AsyncIterable[bytes], path: Path, *, max_bytes: int, memory_bytes: int,
                       budget: MemoryBudget | None = None) -> SpooledPart:
    """A single-part body: held in memory while it is at most ``memory_bytes`` and
    ``budget`` has room (as a part of a multipart body is), else spooled to ``path``. The
    caller calls :meth:`SpooledPart.release` once it has stored it."""
    budget = budget or MemoryBudget(memory_bytes)
    chunks = aiter(body)
    held: list[bytes] = []
    size = 0
    try:
        async for chunk in chunks:
            held.append(chunk)
            if size + len(chunk) > max_bytes:
                raise BodyTooLargeError(f"request body is larger than the {max_bytes}-byte limit")
            if size + len(chunk) > memory_bytes or not budget.take(len(chunk)):
                break
            size += len(chunk)
        else:
            return SpooledPart({}, path, size, data=b"".join(held), budget=budget)
    except BaseException:
        budget.give_back(size)
        raise
    budget.give_back(size)
    part = SpooledPart({}, path, spooled=True)
    part.size, sha256 = await spool_body(_prefixed(held, chunks), path, max_bytes=max_bytes)
    part.digest = _Digest(sha256)
    return part


async def _prefixed(first: list[bytes], rest: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    for chunk in first:
        yield chunk
    async for chunk in rest:
        yield chunk


@dataclass(frozen=True)
class _Digest:
    """A digest already taken (what :attr:`SpooledPart.digest` holds after spooling)."""

    value: str

    def hexdigest(self) -> str:
        return self.value


# -- writing ----------------------------------------------------------------------------


def new_boundary() -> str:
    return uuid.uuid4().hex


def multipart_content_type(part_type: str, boundary: str, transfer_syntax: str | None = None) -> str:
    value = f'multipart/related; type="{part_type}"; boundary={boundary}'
    if transfer_syntax:
        value += f"; transfer-syntax={transfer_syntax}"
    return value


def part_header(boundary: str, content_type: str, extra: dict[str, str] | None = None) -> bytes:
    lines = [f"--{boundary}", f"Content-Type: {content_type}"]
    lines += [f"{name}: {value}" for name, value in (extra or {}).items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def closing(boundary: str) -> bytes:
    return f"--{boundary}--\r\n".encode("latin-1")
