"""URLs the server writes into responses (RetrieveURL, BulkDataURI, hrefs, Location).

This is the one place they are built. The service root is, in order:

1. ``DICOMWEB_PUBLIC_URL`` when set (the service root as clients see it);
2. else the request: ``X-Forwarded-Proto``/``-Host``/``-Prefix`` when the peer is a trusted
   proxy (``DICOMWEB_TRUSTED_PROXIES``), else the scheme and the ``Host`` header. A Host
   without a port (dicomweb-client sends ``Host: 127.0.0.1``) gets the port the server
   actually listens on (the ASGI ``server``), unless that is the scheme's default: the
   URL then works for the client that received it.

A Host or forwarded value that is not a plain host[:port] (or a prefix that is not a plain
path) is refused with 400, never echoed into a URL.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from starlette.requests import Request
from starlette.types import Scope

from dicomweb.http.errors import bad_request
from dicomweb.http.proxies import TrustedProxies

SERVICE_PREFIX = "/v1"
"""The service root path. Same locally and in Azure; ``/v2`` can sit beside it later."""

_HOST = re.compile(r"^(?:[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?|\[[0-9A-Fa-f:.]+\])(?::(\d{1,5}))?$")
_PREFIX = re.compile(r"^(?:/[A-Za-z0-9._~-]+)*/?$")
_DEFAULT_PORTS = {"http": 80, "https": 443}


@dataclass(frozen=True)
class UrlPolicy:
    public_url: str = ""
    proxies: TrustedProxies = field(default_factory=TrustedProxies)


def service_root(request: Request) -> str:
    """``scheme://host[:port][prefix]/v1`` as the client can reach us (see the module doc)."""
    policy: UrlPolicy = getattr(request.app.state, "urls", None) or UrlPolicy()
    if policy.public_url:
        return policy.public_url.rstrip("/")
    return _from_request(request.scope, policy.proxies)


def _from_request(scope: Scope, proxies: TrustedProxies) -> str:
    scheme = str(scope.get("scheme", "http"))
    forwarded_proto = proxies.forwarded(scope, b"x-forwarded-proto")
    if forwarded_proto in _DEFAULT_PORTS:
        scheme = forwarded_proto
    forwarded_host = proxies.forwarded(scope, b"x-forwarded-host")
    if forwarded_host:
        host = _checked_host(forwarded_host, "X-Forwarded-Host")
    else:
        host = _with_listening_port(_checked_host(_host_header(scope), "Host"), scheme, scope)
    prefix = proxies.forwarded(scope, b"x-forwarded-prefix") or ""
    if not _PREFIX.match(prefix):
        raise bad_request("X-Forwarded-Prefix must be a plain path such as /dicom")
    return f"{scheme}://{host}{prefix.rstrip('/')}{SERVICE_PREFIX}"


def _host_header(scope: Scope) -> str:
    for name, value in scope["headers"]:
        if name == b"host":
            return value.decode("latin-1")
    server = scope.get("server")
    return f"{server[0]}:{server[1]}" if server else "localhost"


def _checked_host(host: str, source: str) -> str:
    if not _HOST.match(host):
        raise bad_request(f"the {source} header is not a host name with an optional port")
    return host


def _with_listening_port(host: str, scheme: str, scope: Scope) -> str:
    match = _HOST.match(host)
    server = scope.get("server")
    if match is None or match.group(1) or not server or server[1] is None:
        return host
    port = int(server[1])
    return host if port == _DEFAULT_PORTS.get(scheme) else f"{host}:{port}"


def study_url(root: str, study_uid: str) -> str:
    return f"{root}/studies/{study_uid}"


def series_url(root: str, study_uid: str, series_uid: str) -> str:
    return f"{root}/studies/{study_uid}/series/{series_uid}"


def instance_url(root: str, study_uid: str, series_uid: str, sop_uid: str) -> str:
    return f"{root}/studies/{study_uid}/series/{series_uid}/instances/{sop_uid}"
