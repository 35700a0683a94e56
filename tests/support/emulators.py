"""Local stand-ins for Azure, started by the tests: Azurite (Blob Storage) and the Cosmos
DB test server (npm ``@vercel/cosmosdb-server``), each on a free 127.0.0.1 port.

Both come from ``package.json``/``package-lock.json`` (pinned); if ``node_modules`` is
missing or older than the lock file, :func:`ensure_node_modules` runs ``npm ci`` first,
so a fresh clone needs nothing but node and npm. Each emulator writes its output to a log
file rather than a pipe (a pipe nobody drains would block it), and the port is chosen by
the emulator itself (port 0) and read back from its log: no race for a "free" port.

Run ``python -m tests.support.emulators`` to start both for a local server and print the settings
(see the README, "Run against the Azure emulators").
"""

from __future__ import annotations

import argparse
import ctypes
import fcntl
import hashlib
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
NODE_MODULES = ROOT / "node_modules"

AZURITE_ACCOUNT = "devstoreaccount1"
AZURITE_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
"""Azurite's documented development account; not a secret."""
COSMOS_KEY = "C2y6yDjf5/R+ob0N8A7Cgv30VRDJIWEHLM+4QDU5DE2nQ9nDuVTqobD4b8mGGyPMbIZnqyMsEcaGQy67XIw/Jw=="
"""The Cosmos emulator's documented key; the test server accepts any key."""

_START_TIMEOUT = 60.0


class EmulatorUnavailable(RuntimeError):
    """node/npm are missing or the npm packages could not be installed."""


def missing_tools() -> str | None:
    """Why the emulators cannot run here, or ``None`` when they can."""
    for tool in ("node", "npm"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed"
    return None


def ensure_node_modules() -> None:
    """``npm ci`` when node_modules is missing or older than package-lock.json.

    A lock file serialises concurrent callers (several pytest processes, CI retries).
    """
    reason = missing_tools()
    if reason:
        raise EmulatorUnavailable(reason)
    lock_path = Path(tempfile.gettempdir()) / f"dicomweb-npm-{hashlib.sha1(bytes(ROOT)).hexdigest()[:12]}.lock"
    with open(lock_path, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if _node_modules_current():
            return
        result = subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=ROOT, capture_output=True, text=True)
        if result.returncode != 0:
            raise EmulatorUnavailable(f"npm ci failed:\n{result.stdout}\n{result.stderr}")


def _node_modules_current() -> bool:
    installed = NODE_MODULES / ".package-lock.json"  # npm's record of what it installed
    return installed.exists() and installed.stat().st_mtime >= (ROOT / "package-lock.json").stat().st_mtime


def _die_with_parent() -> None:
    """In the child: be sent SIGTERM when the process that started it dies (Linux), so a
    test run that is killed leaves no emulator behind."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass  # not Linux: stop() still ends the emulator on a normal exit


class _NodeProcess:
    """A node program that prints the URL it listens on; output goes to a log file."""

    def __init__(self, command: list[str], ready: re.Pattern[str], cwd: Path) -> None:
        self._log = tempfile.NamedTemporaryFile(prefix="emulator-", suffix=".log", delete=False)  # noqa: SIM115
        self.process = subprocess.Popen(
            command, cwd=cwd, stdout=self._log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True,  # a Ctrl-C in the test run is handled by stop(), not sent twice
            preexec_fn=_die_with_parent,
        )
        self.url = self._wait_for(ready)

    def _wait_for(self, ready: re.Pattern[str]) -> str:
        deadline = time.monotonic() + _START_TIMEOUT
        while time.monotonic() < deadline:
            match = ready.search(self.log())
            if match:
                return match.group(1)
            if self.process.poll() is not None:
                raise EmulatorUnavailable(f"{self.process.args} exited with {self.process.returncode}:\n{self.log()}")
            time.sleep(0.05)
        output = self.log()  # read before stop(), which removes the log file
        self.stop()
        raise EmulatorUnavailable(f"{self.process.args} did not start in {_START_TIMEOUT:.0f} s:\n{output}")

    def log(self) -> str:
        return Path(self._log.name).read_text(errors="replace")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()
        Path(self._log.name).unlink(missing_ok=True)


@dataclass
class Azurite:
    """Azurite's blob service; ``location`` ``None`` keeps blobs in memory."""

    process: _NodeProcess
    workspace: Path | None

    @property
    def blob_endpoint(self) -> str:
        return f"{self.process.url}/{AZURITE_ACCOUNT}"

    @property
    def connection_string(self) -> str:
        return (
            f"DefaultEndpointsProtocol=http;AccountName={AZURITE_ACCOUNT};AccountKey={AZURITE_KEY};"
            f"BlobEndpoint={self.blob_endpoint};"
        )

    def stop(self) -> None:
        self.process.stop()
        if self.workspace is not None:
            shutil.rmtree(self.workspace, ignore_errors=True)


@dataclass
class CosmosServer:
    process: _NodeProcess

    @property
    def endpoint(self) -> str:
        return self.process.url

    key: str = COSMOS_KEY

    def stop(self) -> None:
        self.process.stop()


def start_azurite(*, in_memory: bool = True, port: int = 0) -> Azurite:
    """Azurite blob service on 127.0.0.1 (``port`` 0: a free one).

    ``--skipApiVersionCheck``: Azurite rejects SDK API versions newer than it knows, and
    the SDK moves faster than Azurite. In memory by default (tests); otherwise a temporary
    workspace, for uploads larger than memory.
    """
    ensure_node_modules()
    workspace = None if in_memory else Path(tempfile.mkdtemp(prefix="azurite-"))
    command = [
        "node", str(NODE_MODULES / "azurite" / "dist" / "src" / "blob" / "main.js"),
        "--blobHost", "127.0.0.1", "--blobPort", str(port), "--skipApiVersionCheck", "--disableTelemetry",
        "--silent", "--blobKeepAliveTimeout", "600",
    ]
    command += ["--inMemoryPersistence"] if workspace is None else ["--location", str(workspace)]
    process = _NodeProcess(command, re.compile(r"listens on (http://127\.0\.0\.1:\d+)"), ROOT)
    return Azurite(process, workspace)


def start_cosmos(*, port: int = 0) -> CosmosServer:
    """The Cosmos DB test server (HTTPS, keep-alive, 404 fix: see scripts/cosmosdb-server.js)."""
    ensure_node_modules()
    command = ["node", str(ROOT / "scripts" / "cosmosdb-server.js"), "--host", "127.0.0.1", "--port", str(port)]
    process = _NodeProcess(command, re.compile(r"listening on (https://127\.0\.0\.1:\d+)"), ROOT)
    return CosmosServer(process)


def azure_environment(azurite: Azurite, cosmos: CosmosServer) -> dict[str, str]:
    """The settings that point a server at these emulators."""
    return {
        "DICOMWEB_BLOB_STORE": "azure",
        "DICOMWEB_BLOB_CONNECTION_STRING": azurite.connection_string,
        "DICOMWEB_BLOB_CONTAINER": "dicomweb",
        "DICOMWEB_INDEX_STORE": "cosmos",
        "DICOMWEB_COSMOS_ENDPOINT": cosmos.endpoint,
        "DICOMWEB_COSMOS_KEY": cosmos.key,
        "DICOMWEB_COSMOS_DATABASE": "dicomweb",
    }


def main() -> None:
    """Start both emulators until Ctrl-C, and print the settings for a server using them.

    The default ports are the ones ``local.settings.json.sample`` names (Azurite's 10000,
    the Cosmos emulator's 8081). Azurite keeps its data in a temporary folder, the Cosmos
    test server in memory: both start empty.
    """
    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--blob-port", type=int, default=10000)
    parser.add_argument("--cosmos-port", type=int, default=8081)
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))  # run the finally below on `kill` too
    azurite = start_azurite(in_memory=False, port=args.blob_port)
    try:
        cosmos = start_cosmos(port=args.cosmos_port)
    except BaseException:
        azurite.stop()
        raise
    try:
        for name, value in azure_environment(azurite, cosmos).items():
            print(f"export {name}='{value}'")
        print("# emulators running; Ctrl-C stops them", flush=True)
        while azurite.process.process.poll() is None and cosmos.process.process.poll() is None:
            time.sleep(1)
    except KeyboardInterrupt:
        pass
    finally:
        azurite.stop()
        cosmos.stop()


if __name__ == "__main__":
    os.chdir(ROOT)
    main()


@dataclass
class AzuriteQueues:
    """Azurite's queue service (the storage queue that starts Durable orchestrations)."""

    process: _NodeProcess

    @property
    def connection_string(self) -> str:
        return (f"DefaultEndpointsProtocol=http;AccountName={AZURITE_ACCOUNT};AccountKey={AZURITE_KEY};"
                f"QueueEndpoint={self.process.url}/{AZURITE_ACCOUNT};")

    def stop(self) -> None:
        self.process.stop()


def start_azurite_queues() -> AzuriteQueues:
    """Azurite's queue service on a free 127.0.0.1 port, in memory."""
    ensure_node_modules()
    command = [
        "node", str(NODE_MODULES / "azurite" / "dist" / "src" / "queue" / "main.js"),
        "--queueHost", "127.0.0.1", "--queuePort", "0", "--skipApiVersionCheck", "--disableTelemetry",
        "--silent", "--inMemoryPersistence",
    ]
    return AzuriteQueues(_NodeProcess(command, re.compile(r"listens on (http://127\.0\.0\.1:\d+)"), ROOT))
