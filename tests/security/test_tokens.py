"""Bearer tokens against a real OpenID provider: what is accepted, and every way a token is refused."""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import json
import time
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from starlette.testclient import TestClient

from dicomweb.app import create_app
from dicomweb.identity.permissions import load_roles
from dicomweb.identity.tokens import TokenValidator
from dicomweb.settings import Settings
from tests.security.conftest import bearer
from tests.support.oidc import AUDIENCE, OidcProvider

SEARCH = "/v1/studies"


def claims(provider: OidcProvider, **changes: Any) -> dict[str, Any]:
    now = int(time.time())
    return {"iss": provider.issuer, "aud": AUDIENCE, "sub": "someone", "iat": now, "exp": now + 600,
            "roles": ["DicomDataOwner"], **changes}


def current_kid(provider: OidcProvider) -> str:
    return str(jwt.get_unverified_header(provider.token("reader"))["kid"])


@functools.cache
def own_key() -> rsa.RSAPrivateKey:
    """A key the provider never saw (made once: RSA key generation is slow)."""
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def refused(client: TestClient, token: str, reason: str) -> None:
    response = client.get(SEARCH, headers=bearer(token))
    assert response.status_code == 401, response.text
    challenge = response.headers["WWW-Authenticate"]
    assert challenge.startswith("Bearer realm=") and 'error="invalid_token"' in challenge
    assert reason in response.json()["message"] and reason in challenge


def test_a_role_token_from_the_provider_is_accepted(auth_client: TestClient, oidc_provider: OidcProvider) -> None:
    response = auth_client.get(SEARCH, headers=bearer(oidc_provider.token("reader")))
    assert response.status_code in (200, 204), response.text


def test_no_token_is_401_with_a_challenge_without_error(auth_client: TestClient, oidc_provider: OidcProvider) -> None:
    response = auth_client.get(SEARCH)
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == f'Bearer realm="{oidc_provider.issuer}"'
    assert "bearer token" in response.json()["message"]
    assert auth_client.get(SEARCH, headers={"Authorization": "Basic dXNlcjpwYXNz"}).status_code == 401


def test_a_token_the_provider_signed_with_its_own_claims_is_accepted(
        auth_client: TestClient, oidc_provider: OidcProvider) -> None:
    """The control for the refusals below: the same path with only one thing wrong in each."""
    response = auth_client.get(SEARCH, headers=bearer(oidc_provider.sign(claims(oidc_provider))))
    assert response.status_code in (200, 204), response.text


def test_expired(auth_client: TestClient, oidc_provider: OidcProvider) -> None:
    now = int(time.time())
    token = oidc_provider.sign(claims(oidc_provider, iat=now - 7200, exp=now - 3600))
    refused(auth_client, token, "expired")


def test_not_yet_valid(auth_client: TestClient, oidc_provider: OidcProvider) -> None:
    refused(auth_client, oidc_provider.sign(claims(oidc_provider, nbf=int(time.time()) + 3600)), "not valid yet")


def test_wrong_audience_from_the_provider(auth_client: TestClient, oidc_provider: OidcProvider) -> None:
    refused(auth_client, oidc_provider.token("owner", resource="api://another-service"), "(aud)")


def test_wrong_issuer(auth_client: TestClient, oidc_provider: OidcProvider) -> None:
    refused(auth_client, oidc_provider.sign(claims(oidc_provider, iss="http://127.0.0.1:1/evil")), "(iss)")


def test_forged_with_another_key_under_the_providers_kid(
        auth_client: TestClient, oidc_provider: OidcProvider) -> None:
    token = jwt.encode(claims(oidc_provider), own_key(), algorithm="RS256",
                       headers={"kid": current_kid(oidc_provider)})
    refused(auth_client, token, "signature does not verify")


def test_alg_none(auth_client: TestClient, oidc_provider: OidcProvider) -> None:
    header = b64(json.dumps({"alg": "none", "typ": "JWT", "kid": current_kid(oidc_provider)}).encode())
    token = f"{header}.{b64(json.dumps(claims(oidc_provider)).encode())}."
    refused(auth_client, token, "algorithm 'none' is not accepted")


def test_hs256_signed_with_the_providers_public_key(auth_client: TestClient, oidc_provider: OidcProvider) -> None:
    """The classic key-confusion forgery: HMAC keyed with the public key the JWKS publishes.
    PyJWT refuses to make one, so it is assembled by hand."""
    kid = current_kid(oidc_provider)
    (jwk,) = [key for key in oidc_provider.jwks()["keys"] if key["kid"] == kid]
    public_pem = jwt.PyJWK(jwk).key.public_bytes(serialization.Encoding.PEM,
                                                 serialization.PublicFormat.SubjectPublicKeyInfo)
    signing_input = (b64(json.dumps({"alg": "HS256", "typ": "JWT", "kid": kid}).encode()) + "."
                     + b64(json.dumps(claims(oidc_provider)).encode()))
    signature = hmac.new(public_pem, signing_input.encode(), hashlib.sha256).digest()
    refused(auth_client, f"{signing_input}.{b64(signature)}", "algorithm 'HS256' is not accepted")


def test_unknown_kid(auth_client: TestClient, oidc_provider: OidcProvider) -> None:
    token = jwt.encode(claims(oidc_provider), own_key(), algorithm="RS256", headers={"kid": "made-up"})
    refused(auth_client, token, "not one of the provider's keys")


def test_garbage(auth_client: TestClient) -> None:
    refused(auth_client, "not-a-jwt", "malformed token")


def test_a_role_that_does_not_grant_the_permission_is_403(
        auth_client: TestClient, oidc_provider: OidcProvider) -> None:
    response = auth_client.delete("/v1/studies/1.2.3", headers=bearer(oidc_provider.token("writer")))
    assert response.status_code == 403
    assert "'delete' permission" in response.json()["message"]
    assert "DicomDataWriter" in response.json()["message"]
    response = auth_client.get(SEARCH, headers=bearer(oidc_provider.token("norole")))
    assert response.status_code == 403 and "'read' permission" in response.json()["message"]


def test_a_roles_file_defines_other_roles(auth_settings: Settings, oidc_provider: OidcProvider, tmp_path) -> None:
    roles_file = tmp_path / "roles.json"
    roles_file.write_text(json.dumps({"ImagingAuditor": ["read"]}))
    settings = auth_settings.with_(auth_roles_file=str(roles_file))
    with TestClient(create_app(settings), base_url="http://testserver") as client:
        token = oidc_provider.token("custom")
        assert client.get(SEARCH, headers=bearer(token)).status_code in (200, 204)
        assert client.delete("/v1/studies/1.2.3", headers=bearer(token)).status_code == 403


def test_a_roles_file_naming_an_unknown_permission_is_refused(tmp_path) -> None:
    roles_file = tmp_path / "roles.json"
    roles_file.write_text(json.dumps({"Auditor": ["peek"]}))
    with pytest.raises(ValueError, match="must list permissions"):
        load_roles(roles_file)


def test_key_rotation_at_the_provider_is_followed_and_refetches_are_rate_limited(
        auth_settings: Settings, oidc_provider: OidcProvider) -> None:
    cooldown = 2.0
    tokens = TokenValidator(oidc_provider.issuer, (AUDIENCE,), "roles", load_roles(None),
                            key_refetch_cooldown=cooldown)
    with TestClient(create_app(auth_settings, tokens=tokens), base_url="http://testserver") as client:
        assert client.get(SEARCH, headers=bearer(oidc_provider.token("reader"))).status_code in (200, 204)
        fetches = oidc_provider.jwks_fetches()
        # A flood of made-up kids costs the provider at most one fetch per cooldown.
        for number in range(20):
            forged = jwt.encode(claims(oidc_provider), own_key(), algorithm="RS256", headers={"kid": f"x{number}"})
            assert client.get(SEARCH, headers=bearer(forged)).status_code == 401
        assert oidc_provider.jwks_fetches() - fetches <= 1
        time.sleep(cooldown)
        new_kid = oidc_provider.rotate()
        token = oidc_provider.token("reader")
        assert jwt.get_unverified_header(token)["kid"] == new_kid
        assert client.get(SEARCH, headers=bearer(token)).status_code in (200, 204)


def test_a_nested_roles_claim(auth_settings: Settings, oidc_provider: OidcProvider) -> None:
    """``DICOMWEB_AUTH_ROLES_CLAIM=realm_access.roles``: Keycloak's realm roles."""
    settings = auth_settings.with_(auth_roles_claim="realm_access.roles")
    token = oidc_provider.sign(claims(oidc_provider, roles=[], realm_access={"roles": ["DicomDataReader"]}))
    with TestClient(create_app(settings), base_url="http://testserver") as client:
        assert client.get(SEARCH, headers=bearer(token)).status_code in (200, 204)
        assert client.get(SEARCH, headers=bearer(oidc_provider.token("reader"))).status_code == 403
