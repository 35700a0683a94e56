"""The server's side of the zero-copy extension (:mod:`dicomweb.http.file_spans`) in
``dicomweb serve``'s uvicorn protocol: a file's bytes go from the page cache to the socket
with ``os.sendfile``, never through Python.

Why not ``loop.sendfile``: uvicorn runs on uvloop here, whose loop does not implement it
(``NotImplementedError``), and uvloop refuses to watch a descriptor a transport owns. So:

- the transport's write buffer is first drained to empty (the status line and body bytes
  sent before must reach the socket first), with its public flow-control API;
- the socket's descriptor is duplicated on the event loop's thread, while the transport is
  known to be open, so the descriptor used below can never be one the loop has closed and
  reused for another connection;
- one worker-thread trip writes a whole message (part headers with ``os.write``, files with
  ``os.sendfile``; a file not in the page cache is read from disk there, not on the event
  loop), non-blocking: when the socket stays full for :data:`THREAD_WAIT_MS` the thread
  returns, and the event loop waits for it to become writable (``add_writer`` on the
  duplicate), so a slow client holds no thread for longer than that;
- a client that takes no bytes for ``DICOMWEB_BODY_TIMEOUT_SECONDS`` is cut off, and one
  that went away ends the response: the app gets ``ConnectionError`` and stops.

A message is one HTTP chunk (or counts against Content-Length, as uvicorn counts body
messages); ``TCP_CORK`` packs the small writes with the files' bytes until the body ends.
Only plain TCP advertises the extension: TLS must encrypt in user space.
"""

from __future__ import annotations

import asyncio
import os
import select
import socket
from typing import Any

from uvicorn.protocols.http.httptools_impl import RequestResponseCycle

from dicomcore.threads import in_thread
from dicomweb.http.file_spans import EXTENSION, FileSpan


def advertise(scope: dict[str, Any], transport: asyncio.BaseTransport) -> None:
    """Offer the extension in a request's scope (plain TCP only)."""
    if transport.get_extra_info("sslcontext") is None and transport.get_extra_info("socket") is not None:
        scope.setdefault("extensions", {})[EXTENSION] = {}


def install(cycle: RequestResponseCycle, idle_timeout: float) -> None:
    """Make ``cycle.send`` take the extension's messages (others go to uvicorn's send)."""
    ordinary = cycle.send
    corked = False

    async def send(message: Any) -> None:
        nonlocal corked
        if message["type"] != EXTENSION:
            await ordinary(message)
            if corked and message["type"] == "http.response.body" and not message.get("more_body", False):
                _cork(cycle.transport, False)  # the end of the body: send what is held now
            return
        if not corked:
            # The kernel gathers the small writes (part headers, chunk sizes, CRLFs) with
            # the files' bytes into full segments: without it each is a packet of its own,
            # and a wake-up of the client, several per instance.
            corked = _cork(cycle.transport, True)
        try:
            await _send_pieces(cycle, message["pieces"], idle_timeout)
        except (OSError, EOFError):
            cycle.transport.close()  # the body cannot go on: cut, never continued out of step
            raise

    cycle.send = send  # type: ignore[method-assign]


def _cork(transport: asyncio.BaseTransport, on: bool) -> bool:
    """Set TCP_CORK (Linux); whether it is now set."""
    sock = transport.get_extra_info("socket")
    if sock is None or not hasattr(socket, "TCP_CORK") or transport.is_closing():
        return False
    try:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_CORK, 1 if on else 0)
    except OSError:
        return False
    return on


Segment = bytes | tuple[int, int, int]
"""What the sending thread writes: bytes, or (file descriptor, offset, count) to sendfile."""


async def _send_pieces(cycle: RequestResponseCycle, pieces: list[bytes | FileSpan], idle_timeout: float) -> None:
    if cycle.flow.write_paused and not cycle.disconnected:
        await cycle.flow.drain()
    if cycle.disconnected or cycle.transport.is_closing():
        raise ConnectionResetError("the client went away")
    if not cycle.response_started or cycle.response_complete:
        raise RuntimeError(f"'{EXTENSION}' is a message in the middle of a response body")
    segments: list[Segment] = [p if isinstance(p, bytes) else (p.file.fileno(), p.offset, p.count)
                               for p in pieces]
    total = sum(len(s) if isinstance(s, bytes) else s[2] for s in segments)
    if total == 0 or cycle.scope["method"] == "HEAD":
        return
    if cycle.chunked_encoding:  # the whole stretch is one chunk
        segments = [b"%x\r\n" % total, *segments, b"\r\n"]
    else:
        if total > cycle.expected_content_length:
            raise RuntimeError("Response content longer than Content-Length")
        cycle.expected_content_length -= total
    await _drained(cycle)
    await _send_segments(cycle.transport, segments, idle_timeout)


async def _drained(cycle: RequestResponseCycle) -> None:
    """Return once the transport's write buffer is empty (bytes written before the file
    must reach the socket first): with the high-water mark at 0, the transport pauses the
    protocol until everything is sent, and uvicorn's flow control waits for the resume."""
    transport = cycle.transport
    if not transport.get_write_buffer_size():
        return
    low, high = transport.get_write_buffer_limits()
    transport.set_write_buffer_limits(high=0, low=0)
    try:
        if cycle.flow.write_paused:
            await cycle.flow.drain()
    finally:
        if not transport.is_closing():
            transport.set_write_buffer_limits(high=high, low=low)
    if cycle.disconnected or transport.is_closing():
        raise ConnectionResetError("the client went away")


async def _send_segments(transport: asyncio.WriteTransport, segments: list[Segment], idle_timeout: float) -> None:
    socket_fd = os.dup(transport.get_extra_info("socket").fileno())
    try:
        position = (0, 0)  # (segment, bytes of it sent)
        while True:
            position = await in_thread(_send_some, socket_fd, segments, position)
            if position[0] == len(segments):
                return
            await _writable(socket_fd, idle_timeout)
    finally:
        os.close(socket_fd)


THREAD_WAIT_MS = 20
"""How long the sending thread waits for a full socket to take bytes before it hands the
wait to the event loop. A client reading at loopback or LAN speed frees socket buffer well
within it, so a 52 MB body costs a thread trip per batch, not one more per buffer-full (a
trip and an event-loop wake-up each: the server's user CPU per 52 MB study fell from a
median 18.7 to 13.7 ms, docs/retrieve-performance.md); a client that reads nothing holds
the thread no longer than this, so stalled clients never exhaust the thread pool."""


def _send_some(socket_fd: int, segments: list[Segment], position: tuple[int, int]) -> tuple[int, int]:
    """Send from ``position`` until done, or until the socket stayed full for
    :data:`THREAD_WAIT_MS`; the new position."""
    index, done = position
    while index < len(segments):
        segment = segments[index]
        try:
            if isinstance(segment, bytes):
                sent = os.write(socket_fd, memoryview(segment)[done:])
            else:
                file_fd, offset, count = segment
                sent = os.sendfile(socket_fd, file_fd, offset + done, count - done)
                if sent == 0:
                    raise EOFError("the file is shorter than the bytes announced for it")
        except BlockingIOError:
            if _writable_soon(socket_fd):
                continue
            return index, done
        done += sent
        if done == (len(segment) if isinstance(segment, bytes) else segment[2]):
            index, done = index + 1, 0
    return index, done


def _writable_soon(socket_fd: int) -> bool:
    """Whether the socket takes bytes (or has an error to report) within :data:`THREAD_WAIT_MS`."""
    poller = select.poll()
    poller.register(socket_fd, select.POLLOUT)
    return bool(poller.poll(THREAD_WAIT_MS))


async def _writable(socket_fd: int, idle_timeout: float) -> None:
    loop = asyncio.get_running_loop()
    ready: asyncio.Future[None] = loop.create_future()

    def wake() -> None:
        if not ready.done():
            ready.set_result(None)

    loop.add_writer(socket_fd, wake)
    try:
        await asyncio.wait_for(ready, idle_timeout)
    except TimeoutError as exc:
        raise ConnectionAbortedError(f"the client took no bytes for {idle_timeout:g} s") from exc
    finally:
        loop.remove_writer(socket_fd)
