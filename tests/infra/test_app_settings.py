"""The Function App's settings in bicep against what the app reads, both ways, derived from
the code: the settings come from ``Settings.from_env`` (every variable it looks up), the
triggers' settings from the functions ``function_app`` registers."""

from __future__ import annotations

import importlib
import json
import os
import re
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any
from unittest import mock

import pytest

from dicomweb.settings import Settings
from tests.infra.bicep import ROOT, app_settings

EMBEDDED_ONLY = {
    "DICOMWEB_DATA_DIR": "the embedded store's folder; Azure mode keeps nothing on local disk",
    "DICOMWEB_BLOB_CONNECTION_STRING": "a connection string holds a key: the deployment signs in with "
                                       "DICOMWEB_BLOB_ACCOUNT_URL and the identity",
    "DICOMWEB_COSMOS_KEY": "Cosmos DB local auth is disabled: the identity signs in",
    "DICOMWEB_EVENTGRID_KEY": "the topic's keys are disabled: the identity publishes",
    "DICOMWEB_TELEMETRY": "local exporters; in Azure APPLICATIONINSIGHTS_CONNECTION_STRING chooses Azure Monitor",
    "DICOMWEB_AUTH_DISABLED": "serving without authentication is for local use only",
    "DICOMWEB_IMPORT_DIR": "the embedded import area (a folder); Azure's is DICOMWEB_IMPORT_CONTAINER",
    "DICOMWEB_AUDIT_LOG": "the embedded audit file; in Azure the audit lines go to Application Insights",
    "DICOMWEB_BODY_TIMEOUT_SECONDS": "the embedded server's connection guard; the Functions host has its own",
    "DICOMWEB_HEADER_TIMEOUT_SECONDS": "the embedded server's connection guard; the Functions host has its own",
    "DICOMWEB_KEEPALIVE_SECONDS": "the embedded server's keep-alive; the Functions host has its own",
    "DICOMWEB_MAX_CONNECTIONS": "the embedded server's connection cap; the Functions host scales out instead",
    "DICOMWEB_REQUEST_LOG": "the embedded server's console request log; Azure logs requests by telemetry",
    "DICOMWEB_VIEWER_DIR": "the bundled viewer is served by the embedded server only (outside /v1)",
}
"""Settings the app reads that the deployment must not set, with why."""

PLATFORM = {
    "AzureWebJobsStorage__blobServiceUri", "AzureWebJobsStorage__queueServiceUri",
    "AzureWebJobsStorage__tableServiceUri", "AzureWebJobsStorage__credential", "AzureWebJobsStorage__clientId",
    "FUNCTIONS_REQUEST_BODY_SIZE_LIMIT",  # the Functions host's request size limit
    "APPLICATIONINSIGHTS_AUTHENTICATION_STRING",  # the host's own telemetry, signed in with the identity
    "AZURE_CLIENT_ID",  # azure-identity: which identity DefaultAzureCredential uses
}
"""Settings read by the Functions host or by azure-identity, not by the app's code."""

AWAITED: dict[str, str] = {}
"""Set by the deployment for features merged in parallel. Once the app reads one, this test
fails until it is removed from here: the list empties itself."""


class _Recording(dict[str, str]):
    def __init__(self, base: Mapping[str, str]) -> None:
        super().__init__(base)
        self.read: set[str] = set()

    def get(self, key: str, default: Any = None) -> Any:  # type: ignore[override]
        self.read.add(key)
        return super().get(key, default)

    def __getitem__(self, key: str) -> str:
        self.read.add(key)
        return super().__getitem__(key)

    def __contains__(self, key: object) -> bool:
        if isinstance(key, str):
            self.read.add(key)
        return super().__contains__(key)


def settings_the_app_reads() -> set[str]:
    """Every environment variable ``Settings.from_env`` looks up."""
    recording = _Recording({})
    with mock.patch.object(os, "environ", recording):
        Settings.from_env()
    return recording.read


@pytest.fixture(scope="module")
def registered_functions(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[dict[str, Any]]]:
    """The bindings of every function ``function_app`` registers (embedded defaults: no I/O)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DICOMWEB_DATA_DIR", str(tmp_path_factory.mktemp("bindings")))
        patch.syspath_prepend(str(ROOT))
        sys.modules.pop("function_app", None)
        module = importlib.import_module("function_app")
        yield [json.loads(f.get_function_json()) for f in module.app.get_functions()]
        sys.modules.pop("function_app", None)


def test_the_derived_list_is_the_real_one() -> None:
    read = settings_the_app_reads()
    assert {"DICOMWEB_BLOB_STORE", "DICOMWEB_COSMOS_ENDPOINT", "APPLICATIONINSIGHTS_CONNECTION_STRING"} <= read


def test_every_setting_the_app_reads_in_azure_mode_is_set_by_the_deployment() -> None:
    missing = settings_the_app_reads() - set(EMBEDDED_ONLY) - set(app_settings())
    assert not missing, f"set these in infra/modules/functionapp.bicep (or list them in EMBEDDED_ONLY): {missing}"


def test_every_app_setting_is_read_by_the_app_the_host_or_a_trigger(registered_functions: list[dict]) -> None:
    known = settings_the_app_reads() | PLATFORM | set(AWAITED) | trigger_settings(registered_functions)
    unknown = set(app_settings()) - known
    assert not unknown, f"the deployment sets settings nothing reads: {unknown}"
    assert not set(app_settings()) & set(EMBEDDED_ONLY)


def test_awaited_settings_are_not_yet_read() -> None:
    landed = set(AWAITED) & settings_the_app_reads()
    assert not landed, f"the app reads {landed} now: remove them from AWAITED"


def trigger_settings(functions: list[dict[str, Any]]) -> set[str]:
    """The app settings the triggers name: %NAME% in paths/queue names, connection prefixes."""
    names: set[str] = set()
    for function in functions:
        for binding in function["bindings"]:
            for value in binding.values():
                if isinstance(value, str):
                    names |= set(re.findall(r"%([A-Za-z0-9_]+)%", value))
            connection = binding.get("connection")
            if connection:
                names |= {name for name in app_settings() if name == connection or name.startswith(f"{connection}__")}
    return names


TRIGGERS_WITHOUT_SETTINGS = {"httpTrigger", "http", "orchestrationTrigger", "activityTrigger", "entityTrigger",
                             "timerTrigger", "durableClient"}


def test_every_trigger_is_wired_in_the_deployment(registered_functions: list[dict]) -> None:
    """Each binding's %settings% are set, and each ``connection`` is identity-based
    (``<connection>__queueServiceUri`` etc., ``__credential`` and ``__clientId``)."""
    settings = app_settings()
    kinds = set()
    for function in registered_functions:
        for binding in function["bindings"]:
            kinds.add(binding["type"])
            for name in re.findall(r"%([A-Za-z0-9_]+)%", json.dumps(binding)):
                assert name in settings, f"{function['name']}: {binding['type']} names %{name}%, which is not set"
            connection = binding.get("connection")
            if connection:
                assert connection not in settings, f"{connection}: a connection string; use identity settings"
                service = {"queueTrigger": "queueServiceUri", "queue": "queueServiceUri",
                           "blobTrigger": "blobServiceUri", "blob": "blobServiceUri"}.get(binding["type"])
                if service:
                    assert f"{connection}__{service}" in settings
                assert settings.get(f"{connection}__credential") == "managedidentity"
                assert f"{connection}__clientId" in settings
            elif binding["type"] not in TRIGGERS_WITHOUT_SETTINGS:
                pytest.fail(f"{function['name']}: {binding['type']} binding is not checked against the deployment")
    assert {"httpTrigger", "queueTrigger"} <= kinds


def test_the_queue_the_trigger_reads_is_the_one_event_grid_writes_to() -> None:
    main = (Path(ROOT) / "infra" / "main.bicep").read_text()
    assert "var blobEventsQueue = 'blob-events'" in main
    assert app_settings()["DICOMWEB_BLOB_EVENTS_QUEUE"] == "blobEventsQueue"
    assert Settings().blob_events_queue == "blob-events"
