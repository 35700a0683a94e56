"""requirements.txt (what the Functions deployment installs) holds every package the app
imports: a venv built from it alone imports function_app and every third-party module
function_app reaches through the app's modules, also those imported inside functions (found
by grimp, the graph import-linter builds). Modules the Functions app never reaches (the
embedded server's CLI) may use packages requirements.txt leaves out."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import grimp

from tests.support.tool_venvs import cached_venv

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("dicomweb", "indexing", "changefeed", "dicomcore")


def third_party_modules() -> set[str]:
    """Full names of the external modules function_app.py imports, directly or through the
    app's modules it reaches (also imports made inside functions: grimp sees every one)."""
    graph = grimp.build_graph(*PACKAGES, include_external_packages=True)
    internal = {m for m in graph.modules if m.split(".")[0] in PACKAGES}
    entry = _modules_in((ROOT / "function_app.py").read_text())
    reached: set[str] = set()
    for module in entry & internal:
        reached |= {module, *(graph.find_upstream_modules(module) & internal)}
    lines: set[str] = set()
    for importer in reached:
        for imported in graph.find_modules_directly_imported_by(importer) - internal:
            lines |= {d["line_contents"] for d in graph.get_import_details(importer=importer, imported=imported)}
    names = {_module_of(line) for line in lines} | (entry - internal)
    return {n for n in names if n.split(".")[0] not in PACKAGES and n.split(".")[0] not in sys.stdlib_module_names}


IMPORT_LINE = re.compile(r"^\s*(?:from\s+([\w.]+)\s+import|import\s+([\w.]+))")


def _module_of(line: str) -> str:
    """The module an import line names (grimp gives the first line of a multi-line import)."""
    match = IMPORT_LINE.match(line)
    assert match, line
    return match.group(1) or match.group(2)


def _modules_in(source: str) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def test_the_app_imports_with_requirements_txt_alone(tmp_path: Path) -> None:
    modules = third_party_modules()
    assert {"azure.functions", "azure.monitor.opentelemetry", "azure.cosmos.aio", "pydicom"} <= modules
    requirements = ROOT / "requirements.txt"
    python = cached_venv("functions-requirements", ["-r", str(requirements)], fingerprint=requirements.read_text())
    script = "import function_app\n" + "".join(f"import {name}\n" for name in sorted(modules))
    result = subprocess.run([str(python), "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=300,
                            env={"PATH": "/usr/bin:/bin", "DICOMWEB_DATA_DIR": str(tmp_path)})
    assert result.returncode == 0, result.stderr[-3000:]
