"""The bicep templates, parsed with pycep-parser (no bicep compiler installs here)."""

from __future__ import annotations

import functools
import re
from pathlib import Path
from typing import Any

from pycep import BicepParser

ROOT = Path(__file__).resolve().parents[2]
INFRA = ROOT / "infra"
MAIN = INFRA / "main.bicep"
FUNCTION_APP = INFRA / "modules" / "functionapp.bicep"


def bicep_files() -> list[Path]:
    return sorted(INFRA.rglob("*.bicep"))


@functools.cache
def parse(path: Path) -> dict[str, Any]:
    parsed: dict[str, Any] = BicepParser().parse(file_path=path)
    return parsed


def resources_of_type(kind: str) -> list[tuple[Path, str, dict[str, Any]]]:
    """(file, symbolic name, config) of every resource of ``kind`` in every template (loops and
    conditions unwrapped; ``existing`` references left out)."""
    found = []
    for path in bicep_files():
        for name, resource in parse(path).get("resources", {}).items():
            if resource["type"] == kind and not resource.get("existing"):
                config = resource["config"]
                while "loop_type" in config or "condition" in config:
                    config = config["config"]
                found.append((path, name, config))
    return found


def app_settings() -> dict[str, Any]:
    """The Function App's app settings (the ``appsettings`` config resource)."""
    (setting,) = [config for path, _, config in resources_of_type("Microsoft.Web/sites/config")
                  if config["name"] == "appsettings" and path == FUNCTION_APP]
    properties: dict[str, Any] = setting["properties"]
    return properties


GUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", re.IGNORECASE)
