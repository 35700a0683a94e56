"""A trivial HTTP server for calibrating the load generator: ``python -m bench.echo PORT SIZE``.

It answers every request with the same ``SIZE``-byte body, doing no other work, so the
request rate the client reaches against it bounds what the client itself can drive. If a
server under test gets near that rate, the number says more about the client than the server.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys


async def serve(port: int, size: int) -> None:
    body = b"x" * size
    head = (
        f"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: {size}\r\n\r\n"
    ).encode()
    answer = head + body

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                raw = await reader.readuntil(b"\r\n\r\n")
                for line in raw.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        await reader.readexactly(int(line.split(b":", 1)[1]))
                writer.write(answer)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", port)
    print(f"echo server ready on http://127.0.0.1:{port}/", flush=True)
    async with server:
        await server.serve_forever()


def main() -> None:
    port, size = int(sys.argv[1]), int(sys.argv[2])
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(port, size))


if __name__ == "__main__":
    main()
