"""Every role assignment in the templates uses a documented built-in role, by its id."""

from __future__ import annotations

import re

from tests.infra.bicep import GUID, bicep_files, resources_of_type

BUILT_IN_ROLES = {
    # Azure RBAC built-in roles (learn.microsoft.com/azure/role-based-access-control/built-in-roles).
    "b7e6dc6d-f1e8-4753-8033-0f276bb0955b": "Storage Blob Data Owner",
    "974c5e8b-45b9-4653-ba55-5f855dd0fb88": "Storage Queue Data Contributor",
    "c6a89b2d-59bc-44d0-9896-0f6e12d7b80a": "Storage Queue Data Message Sender",
    "0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3": "Storage Table Data Contributor",
    "d5a91429-5739-47e2-a06b-3470a27159e7": "EventGrid Data Sender",
    "3913510d-42f4-4e42-8a64-420c390055eb": "Monitoring Metrics Publisher",
    # Cosmos DB for NoSQL's built-in data-plane role, a SQL role definition of the account
    # (learn.microsoft.com/azure/cosmos-db/nosql/security/reference-data-plane-roles).
    "00000000-0000-0000-0000-000000000002": "Cosmos DB Built-in Data Contributor",
}


def _camel(name: str) -> str:
    words = re.findall(r"[A-Za-z0-9]+", name)
    return words[0].lower() + "".join(w[:1].upper() + w[1:] for w in words[1:])


def test_every_role_id_is_a_documented_built_in_role_named_by_its_variable() -> None:
    used = set()
    for path in bicep_files():
        for line in path.read_text().splitlines():
            for guid in GUID.findall(line):
                assert guid in BUILT_IN_ROLES, f"{path.name}: {guid} is not a documented built-in role"
                used.add(guid)
                variable = re.match(r"\s*var\s+(\w+)\s*=", line)
                assert variable and variable.group(1).lower() == _camel(BUILT_IN_ROLES[guid]).lower(), (
                    f"{path.name}: {guid} should be held by a variable named for {BUILT_IN_ROLES[guid]!r}")
    assert used == set(BUILT_IN_ROLES), f"roles in the table the templates no longer use: {set(BUILT_IN_ROLES) - used}"


def test_every_rbac_assignment_refers_to_a_role_definition_by_id() -> None:
    assignments = resources_of_type("Microsoft.Authorization/roleAssignments")
    assert len(assignments) >= 5  # the app's three storage roles are one loop
    for path, name, config in assignments:
        role = config["properties"]["roleDefinitionId"]
        assert role["function"]["type"] == "subscription_resource_id", f"{path.name}:{name}"
        assert role["function"]["parameters"]["resource_type"] == "Microsoft.Authorization/roleDefinitions"
        assert config["properties"]["principalType"] in ("ServicePrincipal", "User")


def test_the_app_identity_holds_the_roles_the_issue_names() -> None:
    text = "\n".join(path.read_text() for path in bicep_files())
    for role in ("eventGridDataSender", "monitoringMetricsPublisher", "storageBlobDataOwner",
                 "storageQueueDataContributor", "storageTableDataContributor", "cosmosDbBuiltInDataContributor"):
        assert re.search(rf"roleDefinitionId: .*{role}|for role in appRoles", text) and role in text
    assert resources_of_type("Microsoft.DocumentDB/databaseAccounts/sqlRoleAssignments")
