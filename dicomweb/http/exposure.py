"""Safe exposure defaults: which Host names are served, CORS, and the headers on every response.

- Allowed hosts (Starlette's ``TrustedHostMiddleware``): the loopback names and the host of
  ``DICOMWEB_PUBLIC_URL`` unless ``DICOMWEB_ALLOWED_HOSTS`` lists others. A web page on
  another name cannot reach a loopback server by rebinding its DNS name to 127.0.0.1: the
  browser sends that name as Host, and it is refused.
- CORS: ``*`` is refused while authentication is off (any page a clinician visits could
  otherwise read and delete through their browser). Credentials are never allowed: the
  bearer token travels in ``Authorization``, which the listed origins may send.
- ``X-Content-Type-Options: nosniff`` on every response; ``Cache-Control: no-store`` on
  every API response (they carry patient data, or say whether it exists).
"""

from __future__ import annotations

from urllib.parse import urlsplit

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from dicomweb.http.response_start import on_response_start

LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1", "[::1]")


def allowed_hosts(configured: tuple[str, ...], public_url: str) -> list[str]:
    if configured:
        return list(configured)
    hosts = list(LOOPBACK_HOSTS)
    public_host = urlsplit(public_url).hostname if public_url else None
    if public_host and public_host not in hosts:
        hosts.append(public_host)
    return hosts


def check_cors(origins: tuple[str, ...], authentication_on: bool) -> None:
    if "*" in origins and not authentication_on:
        raise ValueError("DICOMWEB_CORS_ORIGINS=* is refused while authentication is off: any web page could "
                         "then read and delete through a visitor's browser. List the viewer's origins, or set "
                         "DICOMWEB_AUTH_AUTHORITY.")


class SecurityHeaders:
    """Adds ``nosniff`` everywhere and ``no-store`` under the API prefix."""

    def __init__(self, app: ASGIApp, api_prefix: str) -> None:
        self.app = app
        self.api_prefix = api_prefix

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope.get("path", "")
        is_api = path == self.api_prefix or path.startswith(self.api_prefix + "/")

        def add_headers(message: Message) -> None:
            headers = [(k, v) for k, v in message.get("headers", []) if not (is_api and k == b"cache-control")]
            headers.append((b"x-content-type-options", b"nosniff"))
            if is_api:
                headers.append((b"cache-control", b"no-store"))
            message["headers"] = headers

        await self.app(scope, receive, on_response_start(send, add_headers))
