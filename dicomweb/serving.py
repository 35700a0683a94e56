"""The embedded server's connection guard: timeouts and caps uvicorn lacks.

What uvicorn (0.3x, httptools) does by itself, and what ``dicomweb serve`` sets:

- ``timeout_keep_alive`` closes a kept-alive connection idle after a response
  (``DICOMWEB_KEEPALIVE_SECONDS``);
- ``limit_concurrency`` answers 503 to a request arriving while that many connections or
  requests are open (``DICOMWEB_MAX_CONNECTIONS``).

What it does not do, and :class:`GuardedProtocol` adds:

- no deadline for a request's headers: a connection that sends nothing, or a header byte
  now and then, is kept forever, and ~1,000 of them hold every slot of the concurrency
  limit (every other client gets 503). Here the headers must be complete within
  ``DICOMWEB_HEADER_TIMEOUT_SECONDS`` of the request's first byte (of the connection, for
  the first request); else 408 and the connection is closed;
- no limit on header bytes (httptools takes any size; :mod:`dicomweb.http.limits` can only
  check once they are complete): past 64 KiB, 431 and close;
- no body timeout: a stalled upload holds its staging file and a worker forever. Here a
  pause longer than ``DICOMWEB_BODY_TIMEOUT_SECONDS`` between body bytes closes the
  connection; the app then sees the client disconnect and removes the staging file. Time
  during which the server itself stopped reading (flow control, while the app is busy with
  earlier parts) does not count against the client.

It also offers the app zero-copy file sending (:mod:`dicomweb.zero_copy`): a study
retrieve hands it open files, and their bytes go to the socket with ``os.sendfile``; a
client that takes no bytes for ``DICOMWEB_BODY_TIMEOUT_SECONDS`` is cut off there too.
"""

from __future__ import annotations

import asyncio
import functools
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from dicomweb import zero_copy
from dicomweb.settings import Settings

MAX_HEADER_BYTES = 64 * 1024


@functools.cache
def _settings() -> Settings:
    # Read from the environment in each worker process (``dicomweb serve`` sets it).
    return Settings.from_env()


class GuardedProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with a header deadline, a header size cap and a body
    idle timeout."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        settings = _settings()
        self.header_timeout = settings.header_timeout_seconds
        self.body_timeout = settings.body_timeout_seconds
        self._timer: asyncio.TimerHandle | None = None
        self._reading_headers = True
        self._reading_body = False
        self._header_bytes = 0
        self._body_progress = 0.0
        """Loop time of the last body bytes: the idle clock's start. Noted per chunk rather
        than re-arming the timer per chunk (a timer handle made and cancelled ~8 times per
        513 KB STOW instance, on the event loop: docs/performance.md)."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm(self.header_timeout, self._headers_expired)

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._reading_body:
            self._body_progress = self.loop.time()  # progress: the idle clock starts again
        self._header_bytes += len(data)
        super().data_received(data)
        # Headers still incomplete after all these bytes (a chunk that completes them may
        # carry body bytes too, so only an unfinished header counts).
        if self._reading_headers and self._header_bytes > MAX_HEADER_BYTES + 8192:  # + the request line
            self._refuse(431, f"request headers are larger than {MAX_HEADER_BYTES} bytes")

    def on_message_begin(self) -> None:
        super().on_message_begin()
        zero_copy.advertise(self.scope, self.transport)  # type: ignore[arg-type]
        if not self._reading_headers:  # the next request on a kept-alive connection
            self._reading_headers, self._header_bytes = True, 0
            self._arm(self.header_timeout, self._headers_expired)

    def on_headers_complete(self) -> None:
        self._reading_headers, self._reading_body = False, True
        self._body_progress = self.loop.time()
        self._arm(self.body_timeout, self._body_expired)
        super().on_headers_complete()
        if self.cycle is not None and self.cycle.scope is self.scope:  # the cycle of this request
            zero_copy.install(self.cycle, self.body_timeout)

    def on_message_complete(self) -> None:
        self._reading_body = False
        self._disarm()
        super().on_message_complete()

    # -- timers -------------------------------------------------------------------------

    def _arm(self, seconds: float, callback: Any) -> None:
        self._disarm()
        self._timer = self.loop.call_later(seconds, callback)

    def _disarm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _headers_expired(self) -> None:
        if not self._reading_headers or self.transport.is_closing():
            return
        if self.cycle is not None and not self.cycle.response_complete:
            # A pipelined request behind one still being answered: no 408 inside that answer.
            self._arm(self.header_timeout, self._headers_expired)
            return
        self._refuse(408, f"request headers not received within {self.header_timeout:g} s")

    def _body_expired(self) -> None:
        if not self._reading_body or self.transport.is_closing():
            return
        if self.flow.read_paused:  # the server is not reading (the app is busy): not a stall
            self._body_progress = self.loop.time()
            self._arm(self.body_timeout, self._body_expired)
            return
        idle = self.loop.time() - self._body_progress
        if idle < self.body_timeout:  # bytes came since the timer was armed: wait out the rest
            self._arm(self.body_timeout - idle, self._body_expired)
            return
        # The app sees the disconnect (and removes the upload's staging file); nobody waits
        # for an answer in the middle of a request body.
        self.logger.info("request body stalled for %g s; connection closed", self.body_timeout)
        self.transport.close()

    def _refuse(self, status: int, message: str) -> None:
        body = message.encode("ascii")
        reason = {408: b"Request Timeout", 431: b"Request Header Fields Too Large"}[status]
        self.transport.write(b"HTTP/1.1 %d %s\r\ncontent-type: text/plain; charset=utf-8\r\n"
                             b"content-length: %d\r\nconnection: close\r\n\r\n%s"
                             % (status, reason, len(body), body))
        self.transport.close()
        self._disarm()
