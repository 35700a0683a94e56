"""Processes and the network namespace the benchmark runs them in.

Orthanc always binds 0.0.0.0, so it runs inside a private network namespace that has only
``lo``: nothing outside this machine's sandbox can reach it, and the harness can never hit a
Debian-service Orthanc listening on the host's 8042. Our server and the load client run in
the same namespace so both servers are measured through the same loopback.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

REPO_ROOT = Path(__file__).resolve().parent.parent
NAMESPACE_PREFIX = "dwbench-"
STOP_GRACE_S = 10.0


def child_env() -> dict[str, str]:
    """The environment for every child: the repo importable whatever the child's cwd."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), env.get("PYTHONPATH", "")) if p)
    env["PYTHONUNBUFFERED"] = "1"
    return env


def _ip(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30)


class Namespace:
    """A network namespace with only loopback up; ``prefix`` runs a command inside it."""

    def __init__(self, name: str) -> None:
        self.name = name

    @staticmethod
    def unavailable_reason() -> str:
        if not sys.platform.startswith("linux"):
            return "network namespaces need Linux"
        if os.geteuid() != 0:
            return "network namespaces need root"
        if shutil.which("ip") is None:
            return "the `ip` tool (iproute2) is not installed"
        return ""

    @classmethod
    @contextlib.contextmanager
    def create(cls) -> Iterator[Namespace]:
        remove_stale_namespaces()
        ns = cls(f"{NAMESPACE_PREFIX}{os.getpid()}")
        added = _ip("netns", "add", ns.name)
        if added.returncode != 0:
            raise RuntimeError(f"ip netns add failed: {added.stderr.strip()}")
        try:
            up = _ip("netns", "exec", ns.name, "ip", "link", "set", "lo", "up")
            if up.returncode != 0:
                raise RuntimeError(f"bringing lo up failed: {up.stderr.strip()}")
            yield ns
        finally:
            _ip("netns", "del", ns.name)

    def prefix(self) -> list[str]:
        return ["ip", "netns", "exec", self.name]


def remove_stale_namespaces() -> None:
    """Delete namespaces left by an earlier run that was killed (its pid no longer exists)."""
    listing = _ip("netns", "list")
    for match in re.finditer(rf"^{NAMESPACE_PREFIX}(\d+)\b", listing.stdout, re.MULTILINE):
        pid = int(match.group(1))
        if pid != os.getpid() and not Path(f"/proc/{pid}").exists():
            _ip("netns", "del", match.group(0))


class ManagedProcess:
    """A child in its own session (so Ctrl-C reaches only the harness, which then stops it
    in order) whose output goes to a log file; ``wait_for_line`` watches that output."""

    def __init__(self, name: str, argv: list[str], log_path: Path, cwd: Path = REPO_ROOT) -> None:
        self.name, self.argv, self.log_path = name, argv, log_path
        self._lines: list[str] = []
        self._cond = threading.Condition()
        self.proc = subprocess.Popen(
            argv,
            cwd=cwd,
            env=child_env(),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            text=True,
            errors="replace",
        )
        self._reader = threading.Thread(target=self._drain, name=f"{name}-log", daemon=True)
        self._reader.start()

    def _drain(self) -> None:
        assert self.proc.stdout is not None
        with open(self.log_path, "w") as log:
            for line in self.proc.stdout:
                log.write(line)
                log.flush()
                with self._cond:
                    self._lines.append(line.rstrip("\n"))
                    self._cond.notify_all()
        with self._cond:
            self._cond.notify_all()

    def wait_for_line(self, pattern: str, timeout: float) -> re.Match[str] | None:
        """The first output line matching ``pattern``; None on exit or timeout."""
        regex, seen, deadline = re.compile(pattern), 0, time.monotonic() + timeout
        with self._cond:
            while True:
                for line in self._lines[seen:]:
                    if match := regex.search(line):
                        return match
                seen = len(self._lines)
                remaining = deadline - time.monotonic()
                if remaining <= 0 or (self.proc.poll() is not None and not self._reader.is_alive()):
                    return None
                self._cond.wait(min(remaining, 0.5))

    def tail(self, lines: int = 15) -> str:
        with self._cond:
            return "\n".join(self._lines[-lines:])

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self) -> None:
        """SIGTERM the child's process group (it may have workers), SIGKILL after a grace."""
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(STOP_GRACE_S)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(STOP_GRACE_S)
        self._reader.join(timeout=2)


class ClientProcess:
    """The load generator (``bench.client``), spoken to with one JSON line per command."""

    module = "bench.client"

    def __init__(self, prefix: list[str], log_path: Path) -> None:
        self._log: IO[str] = open(log_path, "w")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [*prefix, sys.executable, "-m", self.module],
            cwd=REPO_ROOT,
            env=child_env(),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._log,
            start_new_session=True,
            text=True,
        )

    def call(self, **cmd: Any) -> dict[str, Any]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(json.dumps(cmd) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"load client exited (code {self.proc.poll()}); see {self._log.name}")
        return json.loads(line)

    def stop(self) -> None:
        if self.proc.poll() is None:
            assert self.proc.stdin is not None
            with contextlib.suppress(OSError):
                self.proc.stdin.close()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
        self._log.close()
