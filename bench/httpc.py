"""A minimal asyncio HTTP/1.1 keep-alive client.

Written for the load generator instead of using httpx because its per-request overhead is
several times lower, and on a two-core machine every client cycle is taken from the server
being measured. It supports only what the benchmark sends: one request at a time per
connection, Content-Length or chunked responses, plain HTTP to loopback.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from dataclasses import dataclass, field

READ_LIMIT = 1 << 20


class HTTPProtocolError(Exception):
    pass


@dataclass
class Response:
    status: int
    headers: dict[str, str]
    body: bytes = b""
    length: int = 0  # body bytes received, even when the body was not kept
    extra: dict[str, str] = field(default_factory=dict)


class Connection:
    """One keep-alive connection; reopens itself after the server closes it."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def _open(self) -> None:
        self.reader, self.writer = await asyncio.open_connection(self.host, self.port, limit=READ_LIMIT)
        sock = self.writer.get_extra_info("socket")
        if sock is not None:
            # Small requests must not wait for Nagle's delayed-ACK dance.
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            with contextlib.suppress(OSError):
                await self.writer.wait_closed()
        self.reader = self.writer = None

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
        if self.writer is None:
            await self._open()
        assert self.reader is not None and self.writer is not None
        lines = [f"{method} {path} HTTP/1.1", f"Host: {self.host}:{self.port}"]
        lines += [f"{k}: {v}" for k, v in headers.items()]
        if body or method in ("POST", "PUT"):
            lines.append(f"Content-Length: {len(body)}")
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        self.writer.write(head + body if len(body) < 65536 else head)
        if len(body) >= 65536:
            self.writer.write(body)
        await self.writer.drain()
        response = await self._read_response(method, keep_body)
        if response.headers.get("connection", "").lower() == "close":
            await self.close()
        return response

    async def _read_response(self, method: str, keep_body: bool) -> Response:
        assert self.reader is not None
        raw = await self.reader.readuntil(b"\r\n\r\n")
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
            return Response(status, headers)
        chunks = await self._read_body(headers, keep_body)
        length = sum(len(c) if isinstance(c, bytes) else c for c in chunks)
        body = b"".join(c for c in chunks if isinstance(c, bytes)) if keep_body else b""
        return Response(status, headers, body, length)

    async def _read_body(self, headers: dict[str, str], keep_body: bool) -> list[bytes | int]:
        """Body pieces; when not keeping the body, lengths stand in for the bytes."""
        assert self.reader is not None
        reader = self.reader
        if "chunked" in headers.get("transfer-encoding", "").lower():
            pieces: list[bytes | int] = []
            while True:
                size_line = await reader.readuntil(b"\r\n")
                size = int(size_line.split(b";", 1)[0].strip(), 16)
                if size == 0:
                    # Trailers (normally none) end with an empty line.
                    while (await reader.readuntil(b"\r\n")) != b"\r\n":
                        pass
                    return pieces
                data = await reader.readexactly(size)
                pieces.append(data if keep_body else len(data))
                await reader.readexactly(2)
        if "content-length" in headers:
            data = await reader.readexactly(int(headers["content-length"]))
            return [data if keep_body else len(data)]
        data = await reader.read()  # no framing: the body ends when the connection does
        await self.close()
        return [data if keep_body else len(data)]
