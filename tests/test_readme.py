"""The README's commands, run as written: parsed from README.md, so the test follows the
README when it changes. The quick start (serve, demo, the curl examples), and the "Run
against the Azure emulators" section.

The first command starts the emulators (in its own shell, as the README says), the rest run
in a second shell: the exports, then ``bash scripts/serve.sh``. Two things differ from a
user's run, both so that parallel test runs cannot collide: the ports (the README's 10000,
8081 and 8080 become free ones, through the scripts' own options and in the variables) and
the data folder. Then one instance is stored and read back through the server.

It uses this checkout's ``.venv`` (the scripts' setup step installs what each mode needs into
it). Needs node and npm; in CI their absence fails the test instead of skipping it.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.builders import make_dataset, to_bytes
from tests.support.emulators import missing_tools
from tests.support.servers import free_port

REPO = Path(__file__).resolve().parents[1]
QUICK_START = "## Quick start"
AZURE = "## Run against the Azure emulators"
# Setting up may install the Azure extra into .venv first; npm ci may run on first use.
START_TIMEOUT_S = 300


def readme_commands(section: str, block: int = 0) -> list[str]:
    """A bash block of a section as shell lines: continuations joined, comments dropped."""
    text = (REPO / "README.md").read_text()
    start = text.index(section)
    end = text.find("\n## ", start + len(section))
    blocks = re.findall(r"```bash\n(.*?)```", text[start:end if end > 0 else None], re.S)
    assert len(blocks) > block, f"no bash block {block} under {section!r} in README.md"
    joined = blocks[block].replace("\\\n", " ")
    lines = [re.sub(r"\s+#\s.*$", "", line).strip() for line in joined.splitlines()]
    return [line for line in lines if line and not line.startswith("#")]


class Shell:
    """A bash process in its own session, its output in a file; stopped with its children."""

    def __init__(self, script: str, log: Path, env: dict[str, str]) -> None:
        self.log = log
        with open(log, "w") as out:
            self.process = subprocess.Popen(["bash", "-c", script], cwd=REPO, stdout=out, stderr=subprocess.STDOUT,
                                            stdin=subprocess.DEVNULL, env=env, start_new_session=True)

    def wait_for(self, pattern: str) -> re.Match[str]:
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            match = re.search(pattern, self.log.read_text(errors="replace"))
            if match:
                return match
            if self.process.poll() is not None:
                break
            time.sleep(0.3)
        pytest.fail(f"{pattern!r} did not appear (exit {self.process.poll()}):\n{self.log.read_text()[-4000:]}")

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)  # its own session: the shell and what it started
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()


@pytest.fixture
def shells() -> Iterator[list[Shell]]:
    started: list[Shell] = []
    yield started
    for shell in reversed(started):
        shell.stop()


def test_readme_quick_start_serves_the_demo_and_its_curl_examples_work(tmp_path: Path,
                                                                        shells: list[Shell]) -> None:
    serve, demo = readme_commands(QUICK_START, 0)
    assert (serve, demo) == ("bash scripts/serve.sh", ".venv/bin/dicomweb demo"), (serve, demo)
    search, store = readme_commands(QUICK_START, 1)
    port = free_port()
    # The store folder through the environment (both commands read it), so the commands stay as written.
    env = {**{name: value for name, value in os.environ.items() if not name.startswith("DICOMWEB_")},
           "DICOMWEB_DATA_DIR": str(tmp_path / "data")}
    server = Shell(f"{serve} --port {port}", tmp_path / "server.log", env)
    shells.append(server)
    server.wait_for(r"service root: http://127\.0\.0\.1:\d+/v1")
    loaded = subprocess.run(["bash", "-c", demo], cwd=REPO, env=env, capture_output=True, text=True, timeout=180)
    assert loaded.returncode == 0, loaded.stdout + loaded.stderr

    def run(command: str) -> str:
        command = command.replace("127.0.0.1:8080", f"127.0.0.1:{port}")
        result = subprocess.run(["bash", "-c", command], cwd=REPO, env=env, capture_output=True, text=True,
                                timeout=60)
        assert result.returncode == 0, result.stderr
        return result.stdout

    found = json.loads(run(search))
    assert {study["00081030"]["Value"][0] for study in found} == {"Demo CT", "Demo MR", "Demo slide"}
    stored = json.loads(run(store))
    assert "00081199" in stored, stored  # ReferencedSOPSequence: the instance was stored
    assert "127.0.0.1:8080" in search and "127.0.0.1:8080" in store, "the README's port changed: update this test"


def test_readme_azure_emulator_commands_store_and_retrieve_an_instance(tmp_path: Path,
                                                                       shells: list[Shell]) -> None:
    reason = missing_tools()
    if reason:
        message = f"the README's emulator commands need node and npm: {reason}"
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(message)
        pytest.skip(message)
    commands = readme_commands(AZURE)
    first, *second = commands
    assert first == "bash scripts/emulators.sh", commands
    assert second[-1] == "bash scripts/serve.sh", commands
    blob_port, cosmos_port, port = free_port(), free_port(), free_port()
    # A user's shell: none of this test run's DICOMWEB_* settings.
    env = {name: value for name, value in os.environ.items() if not name.startswith("DICOMWEB_")}

    emulators = Shell(f"{first} --blob-port {blob_port} --cosmos-port {cosmos_port}", tmp_path / "emulators.log", env)
    shells.append(emulators)
    emulators.wait_for(r"emulators running")

    exports = "\n".join(second[:-1]).replace("127.0.0.1:10000", f"127.0.0.1:{blob_port}").replace(
        "127.0.0.1:8081", f"127.0.0.1:{cosmos_port}")
    assert str(blob_port) in exports and str(cosmos_port) in exports, "the README's ports changed: update this test"
    server = Shell(f"{exports}\n{second[-1]} --port {port} --data {tmp_path / 'data'}", tmp_path / "server.log", env)
    shells.append(server)
    root = server.wait_for(r"service root: (http://\S+/v1)").group(1)

    with httpx.Client(timeout=60) as http:
        assert http.get(f"{root}").json()["store"]["mode"] == "azure"
        ds = make_dataset()
        payload = to_bytes(ds)
        stored = http.post(f"{root}/studies", content=payload,
                           headers={"Content-Type": "application/dicom", "Accept": "application/dicom+json"})
        assert stored.status_code == 200, stored.text
        url = f"{root}/studies/{ds.StudyInstanceUID}/series/{ds.SeriesInstanceUID}/instances/{ds.SOPInstanceUID}"
        retrieved = http.get(url, headers={"Accept": "application/dicom"})
        assert retrieved.status_code == 200
        assert retrieved.content == payload
        assert http.get(root.removesuffix("/v1") + "/health/ready").status_code == 200
