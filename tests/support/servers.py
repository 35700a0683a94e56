"""Real server processes for tests: ``python -m dicomweb serve`` on a free loopback port."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

from dicomweb.settings import Settings


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class ServerProcess:
    """``python -m dicomweb serve`` on 127.0.0.1, stopped when the test ends."""

    def __init__(self, data: Path, workers: int = 1, env: dict[str, str] | None = None, quiet: bool = True,
                 args: list[str] | None = None) -> None:
        self.port = free_port()
        self.output: list[str] = []
        """Every line the server printed (stdout and stderr; ``quiet=False`` keeps the request log)."""
        command = [sys.executable, "-m", "dicomweb", "serve", "--host", "127.0.0.1", "--port", str(self.port),
                   "--data", str(data), "--workers", str(workers), *(args or [])]
        if quiet:
            command.append("--quiet")  # no line per request: benchmarks and load tests would pay for it
        self.process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                        env={**os.environ, **(env or {})}, cwd=Path(__file__).resolve().parents[2])
        self.root = self._wait_for_root()

    def _wait_for_root(self) -> str:
        deadline = time.monotonic() + 30
        assert self.process.stdout is not None
        while time.monotonic() < deadline:
            line = self.process.stdout.readline()
            self.output.append(line)
            if not line and self.process.poll() is not None:
                raise RuntimeError(f"server exited with {self.process.returncode}")
            match = re.search(r"(http://\S+/v1)", line)
            if match:
                # Keep reading its output so a full pipe never blocks the server.
                threading.Thread(target=self._drain, daemon=True).start()
                self._wait_until_listening()
                return match.group(1)
        raise RuntimeError("server did not print its service root in 30 s")

    def _drain(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            if len(self.output) < 10_000:  # bounded: a long run must not grow the test's memory
                self.output.append(line)

    def _wait_until_listening(self) -> None:
        # With several workers the parent binds the socket and prints the root before the
        # workers (slow to import on a busy machine) start listening on it.
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return
            except OSError:
                if self.process.poll() is not None:
                    raise RuntimeError(f"server exited with {self.process.returncode}") from None
                time.sleep(0.05)
        raise RuntimeError(f"server on port {self.port} did not accept connections in 60 s")

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()


def settings_environment(settings: Settings) -> dict[str, str]:
    """The environment that makes a server process use the stores ``settings`` names."""
    env = {"DICOMWEB_BLOB_STORE": settings.blob_store, "DICOMWEB_INDEX_STORE": settings.index_store,
           "DICOMWEB_DELETE_LEASE_SECONDS": str(settings.delete_lease_seconds)}
    if settings.blob_store == "azure":
        env |= {"DICOMWEB_BLOB_CONNECTION_STRING": settings.blob_connection_string,
                "DICOMWEB_BLOB_CONTAINER": settings.blob_container}
    if settings.index_store == "cosmos":
        env |= {"DICOMWEB_COSMOS_ENDPOINT": settings.cosmos_endpoint, "DICOMWEB_COSMOS_KEY": settings.cosmos_key,
                "DICOMWEB_COSMOS_DATABASE": settings.cosmos_database}
    return env


def kill_hard(server: ServerProcess) -> None:
    """``kill -9``: the process gets no chance to clean up (a crash, a power cut)."""
    server.process.kill()
    server.process.wait(timeout=10)
