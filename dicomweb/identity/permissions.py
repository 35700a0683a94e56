"""Permissions, and the roles that grant them.

The built-in roles are the managed DICOM service's app roles (the values of the token's
roles claim, e.g. Entra ID app-role values). A JSON file (``DICOMWEB_AUTH_ROLES_FILE``) can
add roles or redefine these: ``{"ImagingAuditor": ["read"], "DicomDataReader": ["read"]}``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from enum import StrEnum
from pathlib import Path


class Permission(StrEnum):
    READ = "read"
    """search, retrieve, metadata, frames, rendered, change feed, operation status, tag listing"""
    WRITE = "write"
    """STOW, import, upload sessions"""
    DELETE = "delete"
    MANAGE_EXTENDED_QUERY_TAGS = "manageExtendedQueryTags"
    ADMIN = "admin"
    """operations cancel, ingest-failure clearing"""


BUILTIN_ROLES: dict[str, frozenset[Permission]] = {
    "DicomDataReader": frozenset({Permission.READ}),
    "DicomDataWriter": frozenset({Permission.READ, Permission.WRITE}),
    "DicomDataOwner": frozenset(Permission),
}


class RolesFileError(ValueError):
    """The roles file is unreadable or names an unknown permission."""


def load_roles(path: str | Path | None) -> dict[str, frozenset[Permission]]:
    """The built-in roles, overlaid with the file's (when a path is given)."""
    roles = dict(BUILTIN_ROLES)
    if not path:
        return roles
    try:
        document = json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise RolesFileError(f"DICOMWEB_AUTH_ROLES_FILE {path}: {exc}") from exc
    if not isinstance(document, dict):
        raise RolesFileError(f"DICOMWEB_AUTH_ROLES_FILE {path}: expected an object of role -> [permissions]")
    known = {p.value for p in Permission}
    for role, granted in document.items():
        if not isinstance(granted, list) or not all(isinstance(p, str) and p in known for p in granted):
            raise RolesFileError(f"DICOMWEB_AUTH_ROLES_FILE {path}: role {role!r} must list permissions "
                                 f"from {sorted(known)}")
        roles[role] = frozenset(Permission(p) for p in granted)
    return roles


def permissions_of(role_names: Iterable[str], roles: Mapping[str, frozenset[Permission]]) -> frozenset[Permission]:
    """The union of what the named roles grant; unknown role names grant nothing."""
    granted: set[Permission] = set()
    for name in role_names:
        granted |= roles.get(name, frozenset())
    return frozenset(granted)
