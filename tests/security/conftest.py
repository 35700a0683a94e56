"""Fixtures of the authentication tests: settings with the test OpenID provider as authority."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from starlette.testclient import TestClient

from dicomweb.app import create_app
from dicomweb.settings import Settings
from tests.support.oidc import AUDIENCE, OidcProvider


@pytest.fixture
def auth_settings(settings: Settings, oidc_provider: OidcProvider) -> Settings:
    return settings.with_(auth_authority=oidc_provider.issuer, auth_audiences=(AUDIENCE,))


@pytest.fixture
def auth_client(auth_settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(auth_settings), base_url="http://testserver") as client:
        yield client


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}
