"""Shared fixtures: an in-process app client, a real server process on a free port, and
the Azure emulators (started once per session, only when a test asks for them)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from dicomcore import limits
from dicomweb.app import create_app
from dicomweb.settings import Settings
from tests.support.emulators import Azurite, CosmosServer, missing_tools, start_azurite, start_cosmos
from tests.support.oidc import OidcProvider, start_oidc_provider
from tests.support.servers import ServerProcess, settings_environment

AZURE = "azure"
EMBEDDED = "embedded"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "both_backends: run the module's settings/client tests on the embedded store and on the "
        "Azure adapters (Azurite and the Cosmos test server)")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "backend" in metafunc.fixturenames and metafunc.definition.get_closest_marker("both_backends"):
        metafunc.parametrize("backend", [EMBEDDED, AZURE], indirect=True)


@pytest.fixture(autouse=True)
def _default_parse_limits() -> Iterator[None]:
    """Parsing limits are process-wide (set by the composition root from the settings): a
    test that builds an app with small limits must not leave them to the next test."""
    yield
    limits.configure(limits.ParseLimits())


@pytest.fixture
def backend(request: pytest.FixtureRequest) -> str:
    """Which adapters ``settings`` names: embedded unless a test is parametrised."""
    return getattr(request, "param", EMBEDDED)


@pytest.fixture
def settings(tmp_path: Path, backend: str, request: pytest.FixtureRequest) -> Settings:
    # TestClient sends Host: testserver; a real server accepts only loopback names by default.
    base = Settings(data_dir=tmp_path / "data", allowed_hosts=("testserver",))
    if backend == EMBEDDED:
        return base
    azurite: Azurite = request.getfixturevalue("azurite")
    cosmos: CosmosServer = request.getfixturevalue("cosmos_server")
    fresh = uuid.uuid4().hex[:16]  # a container and a database per test: tests stay independent
    return base.with_(
        blob_store="azure", blob_connection_string=azurite.connection_string, blob_container=f"test-{fresh}",
        index_store="cosmos", cosmos_endpoint=cosmos.endpoint, cosmos_key=cosmos.key, cosmos_database=f"test-{fresh}",
    )


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings), base_url="http://testserver") as test_client:
        yield test_client


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ServerProcess]:
    process = ServerProcess(tmp_path / "server-data")
    yield process
    process.stop()


def _require_node() -> None:
    """In CI a missing emulator fails the run (40% of the backend coverage would vanish
    silently otherwise); on a developer's machine the Azure variants are skipped, with why."""
    reason = missing_tools()
    if not reason:
        return
    message = f"Azure emulators need node and npm: {reason}"
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(f"{message} (CI is set: install them, e.g. `npm ci`, rather than skipping)", pytrace=False)
    pytest.skip(message)


@pytest.fixture(scope="session")
def azurite() -> Iterator[Azurite]:
    _require_node()
    emulator = start_azurite()
    yield emulator
    emulator.stop()


@pytest.fixture(scope="session")
def cosmos_server() -> Iterator[CosmosServer]:
    _require_node()
    emulator = start_cosmos()
    yield emulator
    emulator.stop()


@pytest.fixture(scope="session")
def oidc_provider() -> Iterator[OidcProvider]:
    """A real OpenID provider (npm oidc-provider) on 127.0.0.1, for the authentication tests."""
    _require_node()
    provider = start_oidc_provider()
    yield provider
    provider.stop()


@pytest.fixture
def start_server(settings: Settings) -> Iterator[Callable[..., ServerProcess]]:
    """Starts `dicomweb serve` processes on ``settings``'s store (extra environment as keywords;
    no ingest scan, so a test decides when files are found); stops those still running."""
    started: list[ServerProcess] = []

    def start(**env: str) -> ServerProcess:
        server = ServerProcess(settings.data_dir, env={**settings_environment(settings),
                                                       "DICOMWEB_INGEST_SCAN_SECONDS": "0", **env})
        started.append(server)
        return server

    yield start
    for server in started:
        if server.process.poll() is None:
            server.stop()
