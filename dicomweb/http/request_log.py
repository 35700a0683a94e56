"""One log line per request: method, path, status, duration. On in the CLI by default.

The query string is left out on purpose: QIDO queries carry patient names and IDs
(``?PatientName=DOE*``), and logs must hold no patient data. Paths hold only UIDs.
The duration runs until the last byte of the response is sent (streams included).
"""

from __future__ import annotations

import logging
import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from dicomweb.http.response_start import on_response_start

log = logging.getLogger("dicomweb.requests")


class RequestLog:
    """ASGI middleware writing ``GET /v1/studies 200 12.3 ms`` to the ``dicomweb.requests`` logger."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 0

        def note_status(message: Message) -> None:
            nonlocal status
            status = message["status"]

        try:
            await self.app(scope, receive, on_response_start(send, note_status))
        finally:
            elapsed_ms = (time.perf_counter() - started) * 1000
            # No status sent: the app raised (the server answers 500) or the client went away.
            log.info("%s %s %s %.1f ms", scope["method"], scope["path"], status or "-", elapsed_ms)
