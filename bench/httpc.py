"""A minimal asyncio HTTP/1.1 keep-alive client.

Written for the load generator instead of using httpx because its per-request overhead is
several times lower, and on a two-core machine every client cycle is taken from the server
being measured. It supports only what the benchmark sends: one request at a time per
connection, Content-Length or chunked responses, plain HTTP to loopback.

Responses are received with :class:`asyncio.BufferedProtocol`: the event loop reads the
socket straight into one reused buffer, and a body that is not kept is only counted, never
copied. The earlier ``StreamReader`` version copied every byte twice more (into the
reader's buffer, then out of it) and split each chunk into Python objects; it received a
52 MB chunked body from a trivial server at ~450 MB/s where the socket gave ~1 GB/s, so it
capped the study-retrieve figures of both servers (docs/performance.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from dataclasses import dataclass, field

BUFFER_BYTES = 1 << 20
"""The receive buffer: the most a single read from the socket takes."""

MAX_HEAD_BYTES = 256 * 1024
"""A status line and headers (or a chunk-size line) longer than this is a protocol error."""


class HTTPProtocolError(Exception):
    pass


@dataclass
class Response:
    status: int
    headers: dict[str, str]
    body: bytes = b""
    length: int = 0  # body bytes received, even when the body was not kept
    head_at: float = 0.0  # time.perf_counter() when the status line and headers had arrived
    extra: dict[str, str] = field(default_factory=dict)


class _Receiver(asyncio.BufferedProtocol):
    """The socket's bytes in one buffer, ``[start:end]`` not yet consumed."""

    def __init__(self) -> None:
        self.buffer = bytearray(BUFFER_BYTES)
        self.view = memoryview(self.buffer)
        self.start = self.end = 0
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.paused = False
        self.waiter: asyncio.Future[None] | None = None

    # -- protocol callbacks (the event loop) -----------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def get_buffer(self, sizehint: int) -> memoryview:
        if self.start == self.end:
            self.start = self.end = 0
        elif self.end == len(self.buffer):  # move what is left to the front
            kept = self.end - self.start
            self.buffer[:kept] = self.buffer[self.start:self.end]
            self.start, self.end = 0, kept
        return self.view[self.end:]

    def buffer_updated(self, nbytes: int) -> None:
        self.end += nbytes
        if self.end == len(self.buffer) and self.start == 0 and self.transport is not None:
            self.transport.pause_reading()  # full: wait until the reader consumes
            self.paused = True
        self._wake()

    def eof_received(self) -> bool:
        self.closed = True
        self._wake()
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._wake()

    def _wake(self) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(None)

    # -- reading (the client's coroutine) ---------------------------------------------------

    async def _more(self) -> None:
        """Wait for bytes beyond ``end``; raises when the server closed the connection."""
        if self.closed:
            raise asyncio.IncompleteReadError(bytes(self.view[self.start:self.end]), None)
        if self.paused and self.transport is not None:
            self.paused = False
            self.transport.resume_reading()
        self.waiter = asyncio.get_running_loop().create_future()
        try:
            await self.waiter
        finally:
            self.waiter = None

    def _consumed(self, count: int) -> None:
        self.start += count
        if self.paused and self.transport is not None and self.start > 0:
            self.paused = False
            self.transport.resume_reading()

    async def readuntil(self, separator: bytes) -> bytes:
        """Bytes up to and including ``separator`` (bounded by :data:`MAX_HEAD_BYTES`)."""
        searched = self.start
        while True:
            found = self.buffer.find(separator, searched, self.end)
            if found >= 0:
                line = bytes(self.view[self.start:found + len(separator)])
                self._consumed(len(line))
                return line
            if self.end - self.start > MAX_HEAD_BYTES:
                raise HTTPProtocolError("a header or chunk-size line is too long")
            searched = max(self.start, self.end - len(separator) + 1)
            before = self.start
            await self._more()
            searched += self.start - before  # the buffer may have been moved to the front

    async def receive(self, count: int, keep: bool) -> list[bytes]:
        """``count`` bytes: copied out when ``keep``, else only consumed."""
        pieces: list[bytes] = []
        while count > 0:
            if self.start == self.end:
                await self._more()
                continue
            take = min(count, self.end - self.start)
            if keep:
                pieces.append(bytes(self.view[self.start:self.start + take]))
            self._consumed(take)
            count -= take
        return pieces

    async def receive_to_eof(self, keep: bool) -> tuple[list[bytes], int]:
        pieces: list[bytes] = []
        length = 0
        while True:
            if self.start < self.end:
                take = self.end - self.start
                if keep:
                    pieces.append(bytes(self.view[self.start:self.end]))
                length += take
                self._consumed(take)
            if self.closed:
                return pieces, length
            with contextlib.suppress(asyncio.IncompleteReadError):
                await self._more()


class Connection:
    """One keep-alive connection; reopens itself after the server closes it."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.receiver: _Receiver | None = None

    async def _open(self) -> None:
        loop = asyncio.get_running_loop()
        _, self.receiver = await loop.create_connection(_Receiver, self.host, self.port)
        assert self.receiver.transport is not None
        sock = self.receiver.transport.get_extra_info("socket")
        if sock is not None:
            # Small requests must not wait for Nagle's delayed-ACK dance.
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    async def close(self) -> None:
        if self.receiver is not None and self.receiver.transport is not None:
            self.receiver.transport.close()
        self.receiver = None

    async def request(
        self,
        method: str,
        path: str,
        headers: dict[str, str] | None = None,
        body: bytes = b"",
        keep_body: bool = True,
    ) -> Response:
        try:
            return await self._request(method, path, headers or {}, body, keep_body)
        except (ConnectionError, asyncio.IncompleteReadError):
            # A keep-alive connection the server dropped while idle: retry once on a new one.
            await self.close()
            return await self._request(method, path, headers or {}, body, keep_body)

    async def _request(
        self, method: str, path: str, headers: dict[str, str], body: bytes, keep_body: bool
    ) -> Response:
        if self.receiver is None or self.receiver.closed:
            await self._open()
        receiver = self.receiver
        assert receiver is not None and receiver.transport is not None
        lines = [f"{method} {path} HTTP/1.1", f"Host: {self.host}:{self.port}"]
        lines += [f"{k}: {v}" for k, v in headers.items()]
        if body or method in ("POST", "PUT"):
            lines.append(f"Content-Length: {len(body)}")
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        receiver.transport.write(head + body if len(body) < 65536 else head)
        if len(body) >= 65536:
            receiver.transport.write(body)
        response = await self._read_response(receiver, method, keep_body)
        if response.headers.get("connection", "").lower() == "close":
            await self.close()
        return response

    async def _read_response(self, receiver: _Receiver, method: str, keep_body: bool) -> Response:
        raw = await receiver.readuntil(b"\r\n\r\n")
        head_at = time.perf_counter()
        status_line, *header_lines = raw.decode("latin-1").split("\r\n")
        parts = status_line.split(" ", 2)
        if len(parts) < 2 or not parts[0].startswith("HTTP/"):
            raise HTTPProtocolError(f"bad status line {status_line!r}")
        headers: dict[str, str] = {}
        for line in header_lines:
            if ":" in line:
                name, value = line.split(":", 1)
                headers[name.strip().lower()] = value.strip()
        status = int(parts[1])
        if method == "HEAD" or status in (204, 304) or 100 <= status < 200:
            return Response(status, headers, head_at=head_at)
        # An error's body is kept anyway: it is small, and it says what went wrong.
        keep = keep_body or not 200 <= status < 300
        pieces, length = await self._read_body(receiver, headers, keep)
        return Response(status, headers, b"".join(pieces) if keep else b"", length, head_at)

    async def _read_body(self, receiver: _Receiver, headers: dict[str, str], keep_body: bool
                         ) -> tuple[list[bytes], int]:
        """The body's pieces (none when not keeping it) and its length."""
        if "chunked" in headers.get("transfer-encoding", "").lower():
            pieces: list[bytes] = []
            length = 0
            while True:
                size_line = await receiver.readuntil(b"\r\n")
                size = int(size_line.split(b";", 1)[0].strip(), 16)
                if size == 0:
                    # Trailers (normally none) end with an empty line.
                    while (await receiver.readuntil(b"\r\n")) != b"\r\n":
                        pass
                    return pieces, length
                pieces += await receiver.receive(size, keep_body)
                length += size
                if await receiver.readuntil(b"\r\n") != b"\r\n":
                    raise HTTPProtocolError("a chunk does not end with CRLF")
        if "content-length" in headers:
            size = int(headers["content-length"])
            return await receiver.receive(size, keep_body), size
        pieces, length = await receiver.receive_to_eof(keep_body)  # no framing: the body ends with the connection
        await self.close()
        return pieces, length
