"""A small JSON request body (an operation's input), read with a size cap."""

from __future__ import annotations

import json
from typing import Any

from starlette.requests import Request

from dicomweb.http.errors import bad_request

MAX_JSON_BODY = 64 * 1024


async def read_json_body(request: Request) -> Any:
    """The parsed body, or 400 naming the problem: larger than the cap, or not JSON.

    Starlette's ``Request.json()`` reads any size into memory; the cap keeps a hostile
    client from making the server hold more than it needs for a few tags or a folder name.
    """
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_JSON_BODY:
            raise bad_request(f"the request body is larger than {MAX_JSON_BODY} bytes")
    try:
        return json.loads(body or b"null")
    except ValueError:
        raise bad_request("the request body is not JSON") from None
