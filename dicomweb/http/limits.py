"""Request header limits: a request with oversized headers gets 431 before any handler runs.

uvicorn's httptools parser takes headers of any size, so the limit is enforced here, the
same under uvicorn and Azure Functions (which has limits of its own in front).
"""

from __future__ import annotations

import json

from starlette.types import ASGIApp, Receive, Scope, Send

MAX_HEADER_BYTES = 64 * 1024
MAX_HEADER_COUNT = 200


class HeaderLimits:
    def __init__(self, app: ASGIApp, max_bytes: int = MAX_HEADER_BYTES, max_count: int = MAX_HEADER_COUNT) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.max_count = max_count

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            headers = scope["headers"]
            size = sum(len(name) + len(value) for name, value in headers)
            if len(headers) > self.max_count or size > self.max_bytes:
                message = (f"request headers too large: {len(headers)} headers, {size} bytes "
                           f"(limits: {self.max_count} headers, {self.max_bytes} bytes)")
                body = json.dumps({"status": 431, "message": message}).encode()
                await send({"type": "http.response.start", "status": 431,
                            "headers": [(b"content-type", b"application/json"),
                                        (b"content-length", str(len(body)).encode())]})
                await send({"type": "http.response.body", "body": body})
                return
        await self.app(scope, receive, send)
