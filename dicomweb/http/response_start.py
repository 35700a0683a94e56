"""Watching a response's start line from ASGI middleware.

Four middlewares (request log, telemetry, audit, security headers) need the status or the
headers of the response an app sends; each used to wrap ``send`` the same way.
"""

from __future__ import annotations

from collections.abc import Callable

from starlette.types import Message, Send


def on_response_start(send: Send, note: Callable[[Message], None]) -> Send:
    """``send``, calling ``note`` with the ``http.response.start`` message before it goes out.

    ``note`` may read the status or change the message's headers in place.
    """

    async def send_noting_start(message: Message) -> None:
        if message["type"] == "http.response.start":
            note(message)
        await send(message)

    return send_noting_start
