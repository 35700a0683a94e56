"""The benchmark's HTTP client (bench/httpc.py) reads every framing right, bodies larger than
its buffer included, and keeps an error's body even when asked not to keep bodies."""

from __future__ import annotations

import asyncio
import os

import pytest

from bench.httpc import BUFFER_BYTES, Connection

BIG = os.urandom(BUFFER_BYTES * 3 + 12345)


def _answer(path: bytes) -> bytes:
    if path == b"/length":
        return b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(BIG) + BIG
    if path == b"/chunked":
        pieces = [BIG[:10], BIG[10:BUFFER_BYTES * 2], BIG[BUFFER_BYTES * 2:]]
        body = b"".join(b"%x;ext=1\r\n%s\r\n" % (len(p), p) for p in pieces) + b"0\r\nX-Trailer: 1\r\n\r\n"
        return b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + body
    if path == b"/missing":
        return b"HTTP/1.1 404 Not Found\r\nContent-Length: 9\r\n\r\nnot found"
    if path == b"/notmodified":
        return b"HTTP/1.1 304 Not Modified\r\nETag: \"x\"\r\n\r\n"
    return b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n" + BIG  # no framing: ends with the connection


async def _serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            path = head.split(b" ")[1]
            writer.write(_answer(path))
            await writer.drain()
            if path == b"/close":
                break
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    finally:
        writer.close()


@pytest.mark.parametrize("keep", [True, False])
def test_every_framing_on_one_connection(keep: bool) -> None:
    async def run() -> None:
        server = await asyncio.start_server(_serve, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        connection = Connection("127.0.0.1", port)
        try:
            for path in ("/length", "/chunked", "/notmodified", "/missing", "/close", "/length"):
                response = await connection.request("GET", path, keep_body=keep)
                if path == "/missing":
                    assert (response.status, response.body, response.length) == (404, b"not found", 9)
                elif path == "/notmodified":
                    assert (response.status, response.length, response.headers["etag"]) == (304, 0, '"x"')
                else:
                    assert response.status == 200 and response.length == len(BIG)
                    assert response.body == (BIG if keep else b"")
        finally:
            await connection.close()
            server.close()
            await server.wait_closed()

    asyncio.run(run())
