"""The WSI benchmark's load client: ``python -m bench.wsi_client``.

The same JSON-lines protocol and operations as ``bench.client`` (get, stow, request, wait), plus:

- ``stow_file``: STOW one instance file of any size, streamed from disk with ``sendfile`` (the
  client never holds it in memory), as a single-part ``application/dicom`` body or as a
  one-part ``multipart/related`` body; timed from the first byte sent to the last byte received.
- ``parts``: one GET of a multipart response, answered with each part's length and SHA-256, to
  check that tiles are the stored bytes.
- ``http``: one request with a text body (Orthanc's ``/tools/lookup``, deletes).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import socket
import time
from typing import Any

from bench import client as base

BOUNDARY = "wsiBenchBoundary5c2e81d0"
SEND_CHUNK = 8 << 20


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, dict[str, str], bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines:
        name, sep, value = line.partition(":")
        if sep:
            headers[name.strip().lower()] = value.strip()
    status = int(status_line.split(" ", 2)[1])
    if "chunked" in headers.get("transfer-encoding", "").lower():
        pieces = []
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";", 1)[0].strip(), 16)
            if size == 0:
                while (await reader.readuntil(b"\r\n")) != b"\r\n":
                    pass
                break
            pieces.append(await reader.readexactly(size))
            await reader.readexactly(2)
        return status, headers, b"".join(pieces)
    if "content-length" in headers:
        return status, headers, await reader.readexactly(int(headers["content-length"]))
    return status, headers, await reader.read()


async def _exchange(
    host: str, port: int, method: str, path: str, headers: dict[str, str], pieces: list[bytes | str]
) -> tuple[int, dict[str, str], bytes, float]:
    """One request on a fresh connection; ``pieces`` are bytes or file names sent in order."""
    sizes = [len(p) if isinstance(p, bytes) else os.path.getsize(p) for p in pieces]
    reader, writer = await asyncio.open_connection(host, port, limit=1 << 20)
    try:
        sock = writer.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        lines = [f"{method} {path} HTTP/1.1", f"Host: {host}:{port}", "Connection: close"]
        lines += [f"{k}: {v}" for k, v in headers.items()]
        lines.append(f"Content-Length: {sum(sizes)}")
        loop = asyncio.get_running_loop()
        start = time.perf_counter()
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
        for piece in pieces:
            if isinstance(piece, bytes):
                writer.write(piece)
                await writer.drain()
            else:
                await writer.drain()
                with open(piece, "rb") as fh:
                    await loop.sendfile(writer.transport, fh, fallback=True)
        await writer.drain()
        status, answer_headers, body = await _read_response(reader)
        return status, answer_headers, body, time.perf_counter() - start
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()


def _failed_items(body: bytes, content_type: str) -> int | None:
    if "json" not in content_type:
        return None
    try:
        answer = json.loads(body)
    except ValueError:
        return None
    if isinstance(answer, list):
        answer = answer[0] if answer else {}
    if not isinstance(answer, dict):
        return None
    return len(answer.get(base.FAILED_SOP_SEQUENCE, {}).get("Value", []))


async def op_stow_file(cmd: dict[str, Any]) -> dict[str, Any]:
    """POST ``file`` to ``path`` as ``single`` (application/dicom) or ``multipart`` (one part)."""
    file = cmd["file"]
    size = os.path.getsize(file)
    headers = {"Accept": "application/dicom+json"}
    if cmd.get("form", "single") == "multipart":
        headers["Content-Type"] = f'multipart/related; type="application/dicom"; boundary={BOUNDARY}'
        pieces: list[bytes | str] = [
            f"--{BOUNDARY}\r\nContent-Type: application/dicom\r\n\r\n".encode(),
            file,
            f"\r\n--{BOUNDARY}--\r\n".encode(),
        ]
    else:
        headers["Content-Type"] = cmd.get("content_type", "application/dicom")
        pieces = [file]
    cpu0 = time.process_time()
    try:
        status, answer_headers, body, wall = await asyncio.wait_for(
            _exchange(cmd["host"], cmd["port"], "POST", cmd["path"], headers, pieces), cmd.get("timeout", 600)
        )
    except TimeoutError:
        return {"status": 0, "error": f"no answer within {cmd.get('timeout', 600)} s", "bytes": size}
    except Exception as exc:  # a refused or reset upload is a finding, not a crash
        return {"status": 0, "error": f"{type(exc).__name__}: {exc}", "bytes": size}
    content_type = answer_headers.get("content-type", "")
    failed = _failed_items(body, content_type)
    ok = 200 <= status < 300 and failed in (0, None)
    return {
        "status": status,
        "ok_stored": ok,
        "failed_items": failed,
        "bytes": size,
        "wall_s": wall,
        "mb_per_s": size / wall / 1e6 if wall else 0.0,
        "client_cpu_s": time.process_time() - cpu0,
        "content_type": content_type,
        "body": body[:600].decode("utf-8", "replace"),
    }


def _split_multipart(body: bytes, content_type: str) -> list[bytes]:
    params = dict(
        (p.split("=", 1)[0].strip().lower(), p.split("=", 1)[1].strip().strip('"'))
        for p in content_type.split(";")[1:]
        if "=" in p
    )
    delimiter = b"--" + params["boundary"].encode()
    parts = []
    for raw in body.split(b"\r\n" + delimiter)[0:]:
        if raw.startswith(delimiter):
            raw = raw[len(delimiter) :]
        if raw.startswith(b"--"):
            break
        _, sep, payload = raw.partition(b"\r\n\r\n")
        if sep:
            parts.append(payload)
    return parts


async def op_parts(cmd: dict[str, Any]) -> dict[str, Any]:
    """One GET whose multipart answer is split into parts: (length, sha256, sha256 with a pad byte)."""
    status, headers, body, wall = await asyncio.wait_for(
        _exchange(cmd["host"], cmd["port"], "GET", cmd["path"], cmd.get("headers", {}), []), cmd.get("timeout", 300)
    )
    content_type = headers.get("content-type", "")
    out: dict[str, Any] = {"status": status, "content_type": content_type, "length": len(body), "wall_s": wall}
    if status != 200 or not content_type.startswith("multipart/"):
        out["body"] = body[:400].decode("utf-8", "replace")
        return out
    out["parts"] = [
        [len(p), hashlib.sha256(p).hexdigest(), hashlib.sha256(p + b"\x00").hexdigest()]
        for p in _split_multipart(body, content_type)
    ]
    return out


async def op_http(cmd: dict[str, Any]) -> dict[str, Any]:
    """One request with an optional text body; the answer's status and (text) body."""
    body = cmd.get("body", "").encode()
    status, headers, answer, wall = await _exchange(
        cmd["host"], cmd["port"], cmd.get("method", "GET"), cmd["path"], cmd.get("headers", {}),
        [body] if body else [],
    )
    return {"status": status, "headers": headers, "body": answer[:20000].decode("utf-8", "replace"), "wall_s": wall}


OPS = {**base.OPS, "stow_file": op_stow_file, "parts": op_parts, "http": op_http}


def main() -> None:
    base.main(OPS)


if __name__ == "__main__":
    main()
