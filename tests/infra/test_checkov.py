"""checkov's bicep checks pass on infra/, with every skipped check listed, with its reason,
in infra/checkov-skips.json.

checkov runs from its own venv (tests/support/tool_venvs.py): its pins (cachetools<6,
packaging<24, ...) conflict with the project's test dependencies, so it cannot be in the
test extra. ``--skip-download``: nothing is fetched from the vendor's service.
"""

from __future__ import annotations

import json
import subprocess

from tests.infra.bicep import INFRA
from tests.support.tool_venvs import cached_venv

CHECKOV = "checkov==3.3.30"


def test_checkov_passes_with_only_the_listed_skips() -> None:
    skips: dict[str, str] = json.loads((INFRA / "checkov-skips.json").read_text())
    assert all(len(reason) > 30 for reason in skips.values()), "each skip needs its reason"
    python = cached_venv("checkov", [CHECKOV])
    result = subprocess.run(
        [str(python), "-m", "checkov.main", "--directory", str(INFRA), "--framework", "bicep", "--skip-download",
         "--compact", "--quiet", "--output", "json", "--skip-check", ",".join(sorted(skips))],
        capture_output=True, text=True, timeout=300, env={"PATH": "/usr/bin:/bin", "BC_SKIP_MAPPING": "TRUE"},
    )
    assert result.stdout.strip(), result.stderr[-3000:]
    report = json.loads(result.stdout)
    summary = report["summary"]
    failed = [(c["check_id"], c["resource"], c["file_path"]) for c in report["results"]["failed_checks"]]
    assert summary["failed"] == 0 and not failed, failed
    assert summary["passed"] >= 25
