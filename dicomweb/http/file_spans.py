"""Sending stored files without copying them through Python: the app's side of a zero-copy
ASGI extension.

ASGI's own ``http.response.pathsend`` ends the response with one whole file, and uvicorn
does not implement it; a multipart retrieve needs files *between* body bytes (part headers).
So ``dicomweb serve``'s protocol (:mod:`dicomweb.zero_copy`) advertises
``scope["extensions"]["dicomweb.sendfile"]`` and accepts, after ``http.response.start``,
messages ``{"type": "dicomweb.sendfile", "pieces": [bytes | FileSpan, ...]}`` in the middle
of the body: the bytes are written and each span of a file goes to the socket with
``os.sendfile``, in order. The response continues with ordinary body messages and ends with
``more_body=False``. One message carries several files (a study's part headers and files
in batches), so the cost per instance is a few system calls, not a trip through the ASGI
stack and a worker thread each.

Only a server that advertises it gets these messages; the Functions adapter and Starlette's
TestClient do not, and get the ordinary streaming response.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import BinaryIO

from starlette.background import BackgroundTask
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

EXTENSION = "dicomweb.sendfile"
"""The name in ``scope["extensions"]`` and the message type."""


@dataclass(frozen=True)
class FileSpan:
    """``count`` bytes of an open local file from ``offset``; whoever opened it closes it
    (after the message carrying it was sent)."""

    file: BinaryIO
    offset: int
    count: int


Pieces = list[bytes | FileSpan]
"""A stretch of the body: bytes and file spans, sent in order as one message."""


def available(scope: Scope) -> bool:
    """Whether the server sending this response takes :data:`EXTENSION` messages."""
    return EXTENSION in (scope.get("extensions") or {})


class SpanResponse(Response):
    """A body streamed as stretches of :data:`Pieces` (one message each), for a server
    where :func:`available` is true.

    A client that goes away ends the stream: the server raises ``OSError`` for pieces it
    can no longer send, and the iterator is closed (its open files with it).
    """

    def __init__(self, content: AsyncIterator[Pieces], status_code: int = 200,
                 headers: Mapping[str, str] | None = None, media_type: str | None = None,
                 background: BackgroundTask | None = None) -> None:
        self.stretches = content
        self.status_code = status_code
        self.media_type = media_type
        self.background = background
        self.init_headers(headers)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        assert available(scope), "SpanResponse needs a server with the dicomweb.sendfile extension"
        await send({"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers})
        try:
            async for pieces in self.stretches:
                await send({"type": EXTENSION, "pieces": pieces})
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        except OSError:
            return  # the client went away: nobody to answer
        finally:
            aclose = getattr(self.stretches, "aclose", None)
            if aclose is not None:
                await aclose()
        if self.background is not None:
            await self.background()
