"""The deployment's templates, checked offline: every file parses, modules resolve, the
parameters azd passes exist, azure.yaml names the right service, and the resources carry
the settings the deployment promises (Flex Consumption, identity everywhere, no keys)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

from tests.infra.bicep import FUNCTION_APP, INFRA, MAIN, ROOT, bicep_files, parse, resources_of_type


@pytest.mark.parametrize("path", bicep_files(), ids=lambda p: str(p.relative_to(INFRA)))
def test_every_template_parses(path: Path) -> None:
    assert parse(path).get("resources") or parse(path).get("modules")


def test_every_module_reference_resolves_and_gets_only_parameters_it_declares() -> None:
    modules = parse(MAIN)["modules"]
    assert modules
    for name, module in modules.items():
        target = (MAIN.parent / module["detail"]["path"]).resolve()
        assert target.is_file(), f"module {name}: {target} is missing"
        declared = parse(target)["parameters"]
        given = set(module["config"]["params"])
        assert given <= set(declared), f"module {name} is given parameters it does not declare: {given - set(declared)}"
        required = {p for p, spec in declared.items() if "default" not in spec}
        assert required <= given, f"module {name} lacks required parameters {required - given}"


def test_every_parameter_in_main_parameters_json_exists_and_required_ones_are_given() -> None:
    given = json.loads((INFRA / "main.parameters.json").read_text())["parameters"]
    declared = parse(MAIN)["parameters"]
    assert set(given) <= set(declared), f"unknown parameters: {set(given) - set(declared)}"
    required = {p for p, spec in declared.items() if "default" not in spec}
    assert required <= set(given)


def test_cosmos_containers_come_from_the_generated_file() -> None:
    text = (INFRA / "modules" / "cosmos.bicep").read_text()
    assert "loadJsonContent('../cosmos-containers.json')" in text
    assert (INFRA / "cosmos-containers.json").is_file()


def test_azure_yaml_deploys_the_functions_app_from_the_root_in_python() -> None:
    config = yaml.safe_load((ROOT / "azure.yaml").read_text())
    (service,) = config["services"].values()
    assert service == {"project": ".", "language": "python", "host": "function"}
    assert (ROOT / service["project"] / "function_app.py").is_file()
    assert (ROOT / service["project"] / "requirements.txt").is_file()
    assert config["infra"]["path"] == "infra" and (ROOT / "infra" / f"{config['infra']['module']}.bicep").is_file()
    # azd finds the Function App by this tag.
    app = _one("Microsoft.Web/sites")
    assert "'azd-service-name': 'api'" in FUNCTION_APP.read_text() and app["kind"] == "functionapp,linux"
    assert list(config["services"]) == ["api"]


def _one(kind: str) -> dict:
    (found,) = resources_of_type(kind)
    return found[2]


def test_the_function_app_is_flex_consumption_python_with_a_user_assigned_identity() -> None:
    plan = _one("Microsoft.Web/serverfarms")
    assert plan["sku"] == {"tier": "FlexConsumption", "name": "FC1"} and plan["properties"]["reserved"] is True
    app = _one("Microsoft.Web/sites")
    assert app["identity"]["type"] == "UserAssigned"
    config = app["properties"]["functionAppConfig"]
    storage = config["deployment"]["storage"]
    assert storage["type"] == "blobContainer" and storage["authentication"]["type"] == "UserAssignedIdentity"
    assert config["runtime"]["name"] == "python"
    assert set(config["scaleAndConcurrency"]) == {"instanceMemoryMB", "maximumInstanceCount"}
    assert app["properties"]["httpsOnly"] is True
    # The Python the app is tested with (the CI's).
    version = parse(FUNCTION_APP)["parameters"]["pythonVersion"]["default"]
    import sys
    assert version == f"{sys.version_info.major}.{sys.version_info.minor}"


def test_storage_is_locked_down_with_soft_delete_and_the_containers() -> None:
    account = _one("Microsoft.Storage/storageAccounts")["properties"]
    assert account["allowSharedKeyAccess"] is False and account["allowBlobPublicAccess"] is False
    assert account["minimumTlsVersion"] == "TLS1_2" and account["supportsHttpsTrafficOnly"] is True
    blob_service = _one("Microsoft.Storage/storageAccounts/blobServices")["properties"]
    assert blob_service["deleteRetentionPolicy"] == {"enabled": True, "days": "softDeleteDays"}
    main = parse(MAIN)
    assert main["parameters"]["blobSoftDeleteDays"]["default"] >= 1
    containers = {main["variables"][v]["value"] for v in ("dicomContainer", "importContainer", "deploymentContainer")}
    assert containers == {"dicomweb", "import", "app-package"}


def test_cosmos_is_serverless_by_default_and_keyless() -> None:
    account = _one("Microsoft.DocumentDB/databaseAccounts")["properties"]
    assert account["disableLocalAuth"] is True
    assert parse(MAIN)["parameters"]["cosmosThroughput"]["default"] == 0  # 0: serverless
    assert "EnableServerless" in (INFRA / "modules" / "cosmos.bicep").read_text()


def test_event_grid_delivers_blob_created_for_the_dicom_container_to_the_queue_with_an_identity() -> None:
    (_, _, subscription), = resources_of_type("Microsoft.EventGrid/systemTopics/eventSubscriptions")
    properties = subscription["properties"]
    assert properties["filter"]["includedEventTypes"] == ["Microsoft.Storage.BlobCreated"]
    assert properties["filter"]["subjectBeginsWith"] == "/blobServices/default/containers/${dicomContainer}/blobs/"
    delivery = properties["deliveryWithResourceIdentity"]
    assert delivery["destination"]["endpointType"] == "StorageQueue"
    assert delivery["destination"]["properties"]["queueName"] == "blobEventsQueue"
    topic = _one("Microsoft.EventGrid/topics")["properties"]
    assert topic["disableLocalAuth"] is True and topic["inputSchema"] == "CloudEventSchemaV1_0"


def test_monitoring_takes_no_keys() -> None:
    assert _one("Microsoft.Insights/components")["properties"]["DisableLocalAuth"] is True


SECRET = re.compile(r"(?i)(listKeys|listConnectionStrings|AccountKey=|SharedAccessSignature|primaryKey|secret)")


@pytest.mark.parametrize("path", [*bicep_files(), INFRA / "main.parameters.json"], ids=lambda p: p.name)
def test_no_key_or_secret_is_read_or_written(path: Path) -> None:
    code = "\n".join(line.split("//")[0] for line in path.read_text().splitlines())  # comments may say why not
    assert not SECRET.search(code), SECRET.search(code)


def test_no_preview_api_versions() -> None:
    for path in bicep_files():
        for name, resource in parse(path).get("resources", {}).items():
            assert "preview" not in resource["api_version"], f"{path.name}: {name} uses {resource['api_version']}"
