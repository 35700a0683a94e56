"""Starting the two servers under test and describing where they answer.

The harness only detects Orthanc; it never installs it (see bench/README.md).
"""

from __future__ import annotations

import glob
import importlib.metadata
import importlib.util
import json
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.procs import REPO_ROOT, ClientProcess, ManagedProcess

HOST = "127.0.0.1"
READY_TIMEOUT_S = 90.0
PLUGIN_GLOBS = [
    "/usr/share/orthanc/plugins/libOrthancDicomWeb.so",
    "/usr/lib/orthanc/libOrthancDicomWeb.so*",
    "/usr/local/share/orthanc/plugins/libOrthancDicomWeb.so",
]


class ServerUnavailable(Exception):
    """The server cannot be run here; the message says why (printed as a note)."""


@dataclass
class Target:
    """A running server as the workloads see it."""

    key: str  # "ours" or "orthanc"
    label: str
    port: int
    root: str  # DICOMweb service root path, without a trailing slash
    process: ManagedProcess
    info: dict[str, Any] = field(default_factory=dict)
    accept: dict[str, str] = field(default_factory=dict)  # negotiated Accept per request kind
    notes: list[str] = field(default_factory=list)

    @property
    def stow_path(self) -> str:
        return f"{self.root}/studies"

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}{self.root}"


def _wait_http(client: ClientProcess, port: int, path: str, process: ManagedProcess) -> None:
    answer = client.call(op="wait", host=HOST, port=port, path=path, timeout=READY_TIMEOUT_S)
    if not answer.get("ready"):
        raise ServerUnavailable(f"no HTTP answer on port {port}: {answer.get('error')}\n{process.tail()}")


# --- ours -------------------------------------------------------------------------------------


def ours_version() -> dict[str, Any]:
    info: dict[str, Any] = {}
    try:
        info["package_version"] = importlib.metadata.version("dicomweb-server")
    except importlib.metadata.PackageNotFoundError:
        info["package_version"] = None
    head = subprocess.run(
        ["git", "-C", str(REPO_ROOT), "rev-parse", "--short", "HEAD"], capture_output=True, text=True
    )
    info["git_commit"] = head.stdout.strip() if head.returncode == 0 else None
    dirty = subprocess.run(
        ["git", "-C", str(REPO_ROOT), "status", "--porcelain", "--untracked-files=no"],
        capture_output=True,
        text=True,
    )
    info["git_dirty"] = bool(dirty.stdout.strip()) if dirty.returncode == 0 else None
    return info


def start_ours(
    prefix: list[str], client: ClientProcess, port: int, data_dir: Path, log: Path, workers: int
) -> Target:
    if importlib.util.find_spec("dicomweb") is None:
        raise ServerUnavailable("the dicomweb package is not importable")
    argv = [*prefix, sys.executable, "-m", "dicomweb", "serve", "--host", HOST, "--port", str(port)]
    argv += ["--data", str(data_dir), "--quiet"]  # a log line per request would be measured too
    if workers:
        argv += ["--workers", str(workers)]
    process = ManagedProcess("ours", argv, log)
    # The server announces readiness with a line holding its service root URL.
    match = process.wait_for_line(rf"https?://[^\s/]+:{port}(/\S*)?", READY_TIMEOUT_S)
    if match is None:
        process.stop()
        raise ServerUnavailable(f"`python -m dicomweb serve` did not announce its URL:\n{process.tail()}")
    root = (match.group(1) or "").rstrip("/").rstrip(".,;")
    target = Target("ours", "ours", port, root, process)
    try:
        _wait_http(client, port, f"{root}/studies?limit=1", process)
    except ServerUnavailable:
        process.stop()
        raise
    target.info = {**ours_version(), "command": argv[len(prefix) :], "workers": workers or None}
    return target


# --- Orthanc ----------------------------------------------------------------------------------


def find_dicomweb_plugin() -> str | None:
    """The DICOMweb plugin .so: from the Debian package's file list, else known places."""
    listing = subprocess.run(["dpkg", "-L", "orthanc-dicomweb"], capture_output=True, text=True)
    if listing.returncode == 0:
        for line in listing.stdout.splitlines():
            if line.endswith(".so") and "DicomWeb" in line and Path(line).exists():
                return line
    for pattern in PLUGIN_GLOBS:
        if found := sorted(glob.glob(pattern)):
            return found[0]
    return None


def orthanc_unavailable_reason() -> str:
    if shutil.which("Orthanc") is None:
        return "Orthanc is not installed (apt-get install -y orthanc orthanc-dicomweb)"
    if find_dicomweb_plugin() is None:
        return "the Orthanc DICOMweb plugin is not installed (apt-get install -y orthanc-dicomweb)"
    return ""


def orthanc_config(storage: Path, port: int, plugin: str) -> dict[str, Any]:
    return {
        "Name": "bench",
        "StorageDirectory": str(storage),
        "IndexDirectory": str(storage),
        "StorageCompression": False,
        "HttpPort": port,
        "HttpServerEnabled": True,
        "DicomServerEnabled": False,  # no DIMSE listener: only HTTP is measured
        "RemoteAccessAllowed": False,
        "AuthenticationEnabled": False,
        "HttpCompressionEnabled": False,
        "HttpThreadsCount": 50,
        "ConcurrentJobs": 2,
        "KeepAlive": True,
        "TcpNoDelay": True,
        "SaveJobs": False,
        "Plugins": [plugin],
        "DicomWeb": {"Enable": True, "Root": "/dicom-web/", "EnableWado": False, "Ssl": False},
    }


def package_version(name: str) -> str | None:
    query = subprocess.run(["dpkg-query", "-W", "-f=${Version}", name], capture_output=True, text=True)
    return (query.stdout.strip() or None) if query.returncode == 0 else None


def start_orthanc(prefix: list[str], client: ClientProcess, port: int, workdir: Path, log: Path) -> Target:
    if reason := orthanc_unavailable_reason():
        raise ServerUnavailable(reason)
    plugin = find_dicomweb_plugin()
    assert plugin is not None
    storage = workdir / "storage"
    storage.mkdir(parents=True, exist_ok=True)
    config = orthanc_config(storage, port, plugin)
    config_path = workdir / "orthanc.json"
    config_path.write_text(json.dumps(config, indent=2))
    argv = [*prefix, "Orthanc", str(config_path)]
    process = ManagedProcess("orthanc", argv, log)
    try:
        _wait_http(client, port, "/system", process)
    except ServerUnavailable:
        process.stop()
        raise
    target = Target("orthanc", "Orthanc", port, "/dicom-web", process)
    system = client.call(op="request", host=HOST, port=port, path="/system")
    plugin_info = client.call(op="request", host=HOST, port=port, path="/plugins/dicom-web")
    target.info = {
        "version": _json_field(system, "Version"),
        "dicomweb_plugin_version": _json_field(plugin_info, "Version"),
        "debian_packages": {p: package_version(p) for p in ("orthanc", "orthanc-dicomweb")},
        "plugin_path": plugin,
        "config": {k: v for k, v in config.items() if k not in ("StorageDirectory", "IndexDirectory")},
    }
    return target


def _json_field(answer: dict[str, Any], name: str) -> Any:
    try:
        return json.loads(answer.get("body", ""))[name]
    except (ValueError, KeyError, TypeError):
        return None
