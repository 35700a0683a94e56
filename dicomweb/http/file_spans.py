"""Sending stored files without copying them through Python: the app's side of a zero-copy
ASGI extension.

ASGI's own ``http.response.pathsend`` ends the response with one whole file, and uvicorn
does not implement it; a multipart retrieve needs files *between* body bytes (part headers).
So ``dicomweb serve``'s protocol (:mod:`dicomweb.zero_copy`) advertises
``scope["extensions"]["dicomweb.sendfile"]`` and accepts, after ``http.response.start``, a
message ``{"type": "dicomweb.sendfile", "file": <open file>, "offset": int, "count": int}``
in the middle of the body: those bytes of the file go to the socket with ``os.sendfile``.
The response continues with ordinary body messages and ends with ``more_body=False``.

Only a server that advertises it gets these messages; the Functions adapter and Starlette's
TestClient do not, and get the ordinary streaming response.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any, BinaryIO

from starlette.background import BackgroundTask
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

EXTENSION = "dicomweb.sendfile"
"""The name in ``scope["extensions"]`` and the message type."""

SMALL_BYTES = 64 * 1024
"""Body pieces below this are gathered into one message; larger ones are sent as they are."""


@dataclass(frozen=True)
class FileSpan:
    """``count`` bytes of an open local file from ``offset``; whoever opened it closes it."""

    file: BinaryIO
    offset: int
    count: int


def available(scope: Scope) -> bool:
    """Whether the server sending this response takes :class:`FileSpan` messages."""
    return EXTENSION in (scope.get("extensions") or {})


class SpanResponse(Response):
    """A streamed body of bytes and :class:`FileSpan` pieces, for a server where
    :func:`available` is true. Adjacent bytes are sent as one message.

    A client that goes away ends the stream: the server raises ``OSError`` for a span it can
    no longer send, and the body's iterator is closed (its files with it).
    """

    def __init__(self, content: AsyncIterator[bytes | FileSpan], status_code: int = 200,
                 headers: Mapping[str, str] | None = None, media_type: str | None = None,
                 background: BackgroundTask | None = None) -> None:
        self.body_pieces = content
        self.status_code = status_code
        self.media_type = media_type
        self.background = background
        self.init_headers(headers)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        assert available(scope), "SpanResponse needs a server with the dicomweb.sendfile extension"
        await send({"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers})
        try:
            await self._send_body(send)
        except OSError:
            return  # the client went away: nobody to answer
        finally:
            aclose = getattr(self.body_pieces, "aclose", None)
            if aclose is not None:
                await aclose()
        if self.background is not None:
            await self.background()

    async def _send_body(self, send: Send) -> None:
        pending: list[bytes] = []  # small pieces (part headers, CRLFs) waiting to go as one message

        async def flush(more_body: bool = True) -> None:
            await send({"type": "http.response.body", "body": b"".join(pending), "more_body": more_body})
            pending.clear()

        async for piece in self.body_pieces:
            if isinstance(piece, FileSpan):
                if pending:
                    await flush()
                await send(_span_message(piece))
            elif len(piece) < SMALL_BYTES:
                pending.append(piece)
            else:  # a large piece (a converted instance) is not copied into a join
                if pending:
                    await flush()
                await send({"type": "http.response.body", "body": piece, "more_body": True})
        await flush(more_body=False)


def _span_message(span: FileSpan) -> dict[str, Any]:
    return {"type": EXTENSION, "file": span.file, "offset": span.offset, "count": span.count}
