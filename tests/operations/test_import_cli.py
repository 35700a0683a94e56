"""``dicomweb import PREFIX``: in-process over a data folder, and against a running server."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.support.builders import many_instances
from tests.support.servers import ServerProcess

ROOT = Path(__file__).resolve().parents[2]


def _fill(data: Path, count: int, bad: bool = False) -> None:
    folder = data / "import" / "cli"
    folder.mkdir(parents=True)
    for i, blob in enumerate(many_instances("1.2.826.0.1.3680043.8.498.7005", count)):
        (folder / f"{i}.dcm").write_bytes(blob)
    if bad:
        (folder / "notes.txt").write_text("not DICOM")


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "dicomweb", "import", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=120)


def test_in_process_import_reports_counts_and_failures(tmp_path: Path) -> None:
    data = tmp_path / "data"
    _fill(data, 5, bad=True)
    run = _cli("cli/", "--data", str(data))
    assert run.returncode == 1, run.stderr  # a file failed
    assert "succeeded: 5 imported, 0 skipped (already stored), 1 failed" in run.stdout
    assert "100%" in run.stderr  # the progress bar
    refused = _cli("../x", "--data", str(data))
    assert refused.returncode == 2 and ".." in refused.stdout


def test_import_against_a_running_server(tmp_path: Path) -> None:
    data = tmp_path / "data"
    _fill(data, 4)
    server = ServerProcess(data)
    try:
        run = _cli("cli/", "--url", server.root)
        assert run.returncode == 0, run.stdout + run.stderr
        assert "succeeded: 4 imported, 0 skipped (already stored), 0 failed" in run.stdout
    finally:
        server.stop()
