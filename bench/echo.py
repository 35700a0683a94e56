"""A trivial HTTP server for calibrating the load generator: ``python -m bench.echo PORT SIZE [STUDY]``.

It answers every request with the same ``SIZE``-byte body, doing no other work, so the
request rate the client reaches against it bounds what the client itself can drive. If a
server under test gets near that rate, the number says more about the client than the server.

With ``STUDY`` (bytes), ``GET /study`` answers like a study retrieve of that many bytes: a
chunked ``multipart/related`` body of ~525 KB parts, one chunk per 16 parts (the framing
``dicomweb serve`` sends), prebuilt in a temporary file and sent with ``os.sendfile``
(``loop.sendfile``), so the server spends next to nothing and the MB/s the client reaches is
the client's (and the loopback's) ceiling for the study-retrieve rows.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import tempfile
from typing import BinaryIO

PART_BYTES = 525_000
"""The size of one part: a ~513 KB CT instance of the benchmark's data set."""

PARTS_PER_CHUNK = 16
BOUNDARY = b"echoBoundary"
STUDY_HEAD = (
    b'HTTP/1.1 200 OK\r\nContent-Type: multipart/related; type="application/dicom"; boundary=' + BOUNDARY
    + b"\r\nTransfer-Encoding: chunked\r\n\r\n"
)


def write_study_body(out: BinaryIO, size: int) -> None:
    """A chunked multipart body with ``size`` bytes of parts (the framing adds a little)."""
    part = b"--" + BOUNDARY + b"\r\nContent-Type: application/dicom\r\n\r\n" + b"x" * PART_BYTES + b"\r\n"
    parts = max(1, size // PART_BYTES)
    for start in range(0, parts, PARTS_PER_CHUNK):
        chunk = part * min(PARTS_PER_CHUNK, parts - start)
        out.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
    closing = b"--" + BOUNDARY + b"--\r\n"
    out.write(b"%x\r\n%s\r\n0\r\n\r\n" % (len(closing), closing))


async def serve(port: int, size: int, study: BinaryIO | None = None) -> None:
    body = b"x" * size
    head = (
        f"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: {size}\r\n\r\n"
    ).encode()
    answer = head + body
    loop = asyncio.get_running_loop()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                raw = await reader.readuntil(b"\r\n\r\n")
                for line in raw.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        await reader.readexactly(int(line.split(b":", 1)[1]))
                if study is not None and raw.split(b" ", 2)[1] == b"/study":
                    writer.write(STUDY_HEAD)
                    await loop.sendfile(writer.transport, study, 0)
                    continue
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
    study_bytes = int(sys.argv[3]) if len(sys.argv) > 3 else 0
    with contextlib.ExitStack() as stack:
        study = None
        if study_bytes:
            study = stack.enter_context(tempfile.TemporaryFile(prefix="echo-study-"))
            write_study_body(study, study_bytes)
            study.flush()
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(serve(port, size, study))


if __name__ == "__main__":
    main()
