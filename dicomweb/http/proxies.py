"""Which peers may tell us, through ``X-Forwarded-*``, how the client addressed us.

Only a request whose peer address is one of ``DICOMWEB_TRUSTED_PROXIES`` (addresses or
networks) has its forwarded headers honoured; anyone else could forge them. The first
value of a list is used (the one the outermost trusted proxy set for its client).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

from starlette.types import Scope

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class TrustedProxies:
    def __init__(self, entries: Iterable[str] = ()) -> None:
        self.networks: list[Network] = []
        for entry in entries:
            try:
                self.networks.append(ipaddress.ip_network(entry, strict=False))
            except ValueError as exc:
                raise ValueError(f"DICOMWEB_TRUSTED_PROXIES: {entry!r} is not an address or network") from exc

    def trusts(self, scope: Scope) -> bool:
        client = scope.get("client")
        if not client or not self.networks:
            return False
        try:
            address = ipaddress.ip_address(client[0])
        except ValueError:
            return False
        return any(address in network for network in self.networks)

    def forwarded(self, scope: Scope, name: bytes) -> str | None:
        """The first value of a forwarded header, from a trusted peer only."""
        if not self.trusts(scope):
            return None
        for header, value in scope["headers"]:
            if header == name:
                first = value.decode("latin-1").split(",")[0].strip()
                return first or None
        return None

    def client_address(self, scope: Scope) -> str:
        forwarded = self.forwarded(scope, b"x-forwarded-for")
        if forwarded:
            return forwarded
        client = scope.get("client")
        return str(client[0]) if client else ""
