"""Bearer tokens from an OpenID Connect provider: who the caller is, and what they may do.

PyJWT does the cryptography and the claim checks; this module only chooses what to accept:
the provider's keys (from its discovery document's ``jwks_uri``), asymmetric algorithms
only (``none`` and HMAC are refused before any key is looked up: an HMAC "signed" with the
provider's public key would otherwise verify), the provider's issuer, one of the configured
audiences, and ``exp``/``nbf`` with a small clock skew.

Keys: PyJWKClient caches the key set (refreshed every 5 minutes) and refetches it when a
token names a ``kid`` it does not hold (a key rotation), at most once per cooldown, so a
flood of tokens with made-up ``kid`` values cannot hammer the provider.

Validated tokens are remembered for a minute (never past their ``exp``), keyed by their
hash: a viewer sends the same token with hundreds of frame requests, and a full validation
costs 0.3-0.6 ms of CPU (plus a worker-thread hop) against 5-9 µs for a remembered one
(``python -m bench.auth_cost``). A JWT cannot be revoked before it expires anyway, so the
cache changes nothing an attacker can use; a token that fails is never remembered.

:meth:`TokenValidator.validate` blocks (discovery and key fetches are HTTP calls): callers
run it in a worker thread, after trying :meth:`TokenValidator.remembered`, which never blocks.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import cachetools
import httpx
import jwt

from dicomweb.identity.permissions import Permission, permissions_of

ALGORITHMS = ("RS256", "ES256", "PS256")
CLOCK_SKEW_SECONDS = 60
KEY_REFETCH_COOLDOWN_SECONDS = 30.0
KEY_SET_LIFESPAN_SECONDS = 300.0
DISCOVERY_RETRY_SECONDS = 5.0
REMEMBER_SECONDS = 60.0
REMEMBER_MAX_TOKENS = 4096
HTTP_TIMEOUT_SECONDS = 10.0


@dataclass(frozen=True)
class Caller:
    """An authenticated caller (or the open server's anonymous one)."""

    subject: str
    """``oid`` (Entra's stable object id) or ``sub``"""
    application: str
    """``appid`` / ``azp`` / ``client_id``: the client application"""
    roles: tuple[str, ...]
    permissions: frozenset[Permission]


ANONYMOUS = Caller(subject="anonymous", application="", roles=(), permissions=frozenset(Permission))
"""The caller of a server running without an authority: everything is allowed."""


class InvalidToken(Exception):
    """The token is not acceptable; the message says why (it goes into ``error_description``)."""


class ProviderUnreachable(Exception):
    """The OpenID provider's discovery document or keys could not be fetched."""


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


@dataclass(frozen=True)
class _Provider:
    issuer: str
    keys: jwt.PyJWKClient


class TokenValidator:
    def __init__(self, authority: str, audiences: tuple[str, ...], roles_claim: str,
                 roles: Mapping[str, frozenset[Permission]],
                 key_refetch_cooldown: float = KEY_REFETCH_COOLDOWN_SECONDS) -> None:
        if not audiences:
            raise ValueError("DICOMWEB_AUTH_AUDIENCE must name the audience(s) of the tokens when "
                             "DICOMWEB_AUTH_AUTHORITY is set")
        self.authority = authority.rstrip("/")
        self.audiences = list(audiences)
        self.roles_claim = roles_claim
        self.roles = roles
        self.key_refetch_cooldown = key_refetch_cooldown
        self._provider: _Provider | None = None
        self._lock = threading.Lock()
        self._last_failed_discovery = float("-inf")
        self._remembered: cachetools.TTLCache[bytes, tuple[Caller, float]] = cachetools.TTLCache(
            REMEMBER_MAX_TOKENS, REMEMBER_SECONDS)
        self._remembered_lock = threading.Lock()

    @property
    def realm(self) -> str:
        return self.authority

    def remembered(self, token: str) -> Caller | None:
        """The caller of a token validated in the last minute and not yet expired."""
        with self._remembered_lock:
            found = self._remembered.get(_digest(token))
        if found is None or found[1] <= time.time():
            return None
        return found[0]

    def validate(self, token: str) -> Caller:
        alg = self._algorithm(token)
        provider = self._discover()
        claims = self._verified_claims(token, alg, provider)
        roles = self._roles(claims)
        caller = Caller(
            subject=str(claims.get("oid") or claims.get("sub") or ""),
            application=str(claims.get("appid") or claims.get("azp") or claims.get("client_id") or ""),
            roles=roles,
            permissions=permissions_of(roles, self.roles),
        )
        with self._remembered_lock:
            self._remembered[_digest(token)] = (caller, float(claims["exp"]))
        return caller

    @staticmethod
    def _algorithm(token: str) -> str:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.DecodeError as exc:
            raise InvalidToken(f"malformed token: {exc}") from exc
        alg = header.get("alg")
        if alg not in ALGORITHMS:
            raise InvalidToken(f"algorithm {alg!r} is not accepted (only {', '.join(ALGORITHMS)})")
        if not header.get("kid"):
            raise InvalidToken("the token names no signing key (kid)")
        return str(alg)

    def _verified_claims(self, token: str, alg: str, provider: _Provider) -> dict[str, Any]:
        try:
            key = provider.keys.get_signing_key_from_jwt(token)
        except jwt.PyJWKClientConnectionError as exc:
            raise ProviderUnreachable(f"cannot fetch the OpenID provider's keys: {exc}") from exc
        except (jwt.PyJWKClientError, jwt.DecodeError) as exc:
            raise InvalidToken("the token's signing key (kid) is not one of the provider's keys") from exc
        try:
            claims: dict[str, Any] = jwt.decode(
                token, key, algorithms=[alg], audience=self.audiences, issuer=provider.issuer,
                leeway=CLOCK_SKEW_SECONDS, options={"require": ["exp", "iss", "aud"]},
            )
        except jwt.ExpiredSignatureError as exc:
            raise InvalidToken("the token has expired") from exc
        except jwt.ImmatureSignatureError as exc:
            raise InvalidToken("the token is not valid yet (nbf)") from exc
        except jwt.InvalidAudienceError as exc:
            raise InvalidToken("the token is not meant for this service (aud)") from exc
        except jwt.InvalidIssuerError as exc:
            raise InvalidToken("the token was not issued by the configured authority (iss)") from exc
        except jwt.InvalidSignatureError as exc:
            raise InvalidToken("the token's signature does not verify") from exc
        except jwt.PyJWTError as exc:
            raise InvalidToken(f"invalid token: {exc}") from exc
        return claims

    def _roles(self, claims: Mapping[str, Any]) -> tuple[str, ...]:
        """The roles claim: a list or a space-separated string; a dotted name reaches into
        nested objects (Keycloak's ``realm_access.roles``)."""
        value: Any = claims
        for part in self.roles_claim.split("."):
            value = value.get(part) if isinstance(value, Mapping) else None
        if isinstance(value, str):
            return tuple(value.split())
        if isinstance(value, list):
            return tuple(str(role) for role in value)
        return ()

    def _discover(self) -> _Provider:
        """The provider's issuer and key client, from its discovery document (fetched once)."""
        if self._provider is not None:
            return self._provider
        with self._lock:
            if self._provider is not None:
                return self._provider
            if time.monotonic() - self._last_failed_discovery < DISCOVERY_RETRY_SECONDS:
                raise ProviderUnreachable("the OpenID provider could not be reached moments ago")
            url = f"{self.authority}/.well-known/openid-configuration"
            try:
                response = httpx.get(url, timeout=HTTP_TIMEOUT_SECONDS)
                response.raise_for_status()
                document = response.json()
                issuer, jwks_uri = str(document["issuer"]), str(document["jwks_uri"])
            except (httpx.HTTPError, ValueError, KeyError, TypeError) as exc:
                self._last_failed_discovery = time.monotonic()
                raise ProviderUnreachable(f"cannot read the OpenID provider's discovery document: {exc}") from exc
            keys = jwt.PyJWKClient(jwks_uri, cache_jwk_set=True, lifespan=KEY_SET_LIFESPAN_SECONDS,
                                   timeout=HTTP_TIMEOUT_SECONDS, cooldown_duration=self.key_refetch_cooldown)
            self._provider = _Provider(issuer, keys)
            return self._provider
