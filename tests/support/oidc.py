"""A real OpenID provider for the authentication tests: npm ``oidc-provider`` on 127.0.0.1
(``tests/support/oidc_provider.mjs``), started like the Azure emulators.

Clients ``reader``, ``writer``, ``owner`` (the built-in roles), ``custom`` (role
``ImagingAuditor``) and ``norole`` get JWT access tokens by the client-credentials grant.
"""

from __future__ import annotations

import re
import time
from typing import Any

import httpx

from tests.support.emulators import ROOT, _NodeProcess, ensure_node_modules

AUDIENCE = "api://dicomweb"
ROLE_CLIENTS = {"reader": "DicomDataReader", "writer": "DicomDataWriter", "owner": "DicomDataOwner"}


class OidcProvider:
    def __init__(self) -> None:
        ensure_node_modules()
        command = ["node", str(ROOT / "tests" / "support" / "oidc_provider.mjs")]
        self.process = _NodeProcess(command, re.compile(r"listening on (http://127\.0\.0\.1:\d+)"), ROOT)
        self.issuer = self.process.url
        self._tokens: dict[tuple[str, str], tuple[str, float]] = {}

    def token(self, client: str, resource: str = AUDIENCE) -> str:
        """An access token issued to ``client`` by the client-credentials grant (cached while it
        has more than a minute left: the provider session outlives a token's 600 s on a slow run)."""
        cached = self._tokens.get((client, resource))
        if cached is None or cached[1] - time.monotonic() < 60:
            response = httpx.post(f"{self.issuer}/token", data={
                "grant_type": "client_credentials", "client_id": client, "client_secret": "secret",
                "resource": resource, "scope": "dicom"})
            response.raise_for_status()
            body = response.json()
            cached = (body["access_token"], time.monotonic() + float(body.get("expires_in", 600)))
            self._tokens[client, resource] = cached
        return cached[0]

    def sign(self, claims: dict[str, Any]) -> str:
        """``claims`` signed with the provider's current key (tokens its grant would never issue)."""
        return str(self._test("sign", claims)["token"])

    def rotate(self) -> str:
        """A new signing key (the old one stays published); its kid."""
        self._tokens.clear()
        return str(self._test("rotate", {})["kid"])

    def jwks_fetches(self) -> int:
        return int(httpx.get(f"{self.issuer}/test/stats").json()["jwksFetches"])

    def jwks(self) -> dict[str, Any]:
        return dict(httpx.get(f"{self.issuer}/jwks").json())

    def _test(self, action: str, body: dict[str, Any]) -> dict[str, Any]:
        response = httpx.post(f"{self.issuer}/test/{action}", json=body)
        response.raise_for_status()
        return dict(response.json())

    def stop(self) -> None:
        self.process.stop()


def start_oidc_provider() -> OidcProvider:
    return OidcProvider()
