"""A real FHIR R4 server for tests and benchmarks: SEKMET (PyPI ``sekmet-fhir``, FastAPI +
SQLite) on a free loopback port, its simulator off; and a proxy that can play unavailable."""

from __future__ import annotations

import http.server
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from tests.support.servers import free_port

SETTINGS = """\
host: 127.0.0.1
port: {port}
base_url: http://127.0.0.1:{port}/fhir
data_dir: {data}
simulator:
  enabled: false
log_inbound: false
"""


class FhirServer:
    """``sekmet serve`` on 127.0.0.1 with its own database, stopped by :meth:`stop`."""

    def __init__(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}/fhir"
        config = folder / "settings.yaml"
        config.write_text(SETTINGS.format(port=self.port, data=folder / "data"))
        sekmet = Path(sys.executable).with_name("sekmet")
        self.log = open(folder / "sekmet.log", "wb")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(
            [str(sekmet), "serve", "-c", str(config), "--host", "127.0.0.1", "--port", str(self.port)],
            stdout=self.log, stderr=subprocess.STDOUT, cwd=folder, env={**os.environ, "SEKMET_CONFIG": str(config)})
        self._wait()

    def _wait(self) -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the FHIR server exited with {self.process.returncode}")
            try:
                if httpx.get(f"{self.base_url}/metadata", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        self.stop()
        raise RuntimeError("the FHIR server did not answer /metadata in 60 s")

    def search(self, resource_type: str, **params: str) -> list[dict[str, Any]]:
        """Every resource of a type matching ``params`` (one big page)."""
        response = httpx.get(f"{self.base_url}/{resource_type}", params={"_count": "1000", **params}, timeout=30)
        response.raise_for_status()
        return [entry["resource"] for entry in response.json().get("entry", [])]

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.log.close()


class FlakyProxy:
    """A loopback HTTP proxy to ``target`` that answers 503 while :attr:`failing` is set,
    counting what it refused (a FHIR server that is unavailable for a while); ``rewrite``
    may change each answer's body (given the request path)."""

    def __init__(self, target: str, rewrite: Callable[[str, bytes], bytes] | None = None) -> None:
        url = httpx.URL(target.rstrip("/"))
        self.origin = f"{url.scheme}://{url.host}:{url.port}"
        self.path = url.path
        self.failing = False
        self.refused = 0
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def _forward(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                if proxy.failing:
                    proxy.refused += 1
                    self._answer(503, b'{"resourceType":"OperationOutcome","issue":[{"code":"transient"}]}', {})
                    return
                headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "content-length")}
                response = httpx.request(self.command, proxy.origin + self.path, content=body, headers=headers,
                                         timeout=60)
                body = rewrite(self.path, response.content) if rewrite else response.content
                self._answer(response.status_code, body, dict(response.headers))

            def _answer(self, status: int, body: bytes, headers: dict[str, str]) -> None:
                self.send_response(status)
                for name, value in headers.items():
                    if name.lower() not in ("content-length", "transfer-encoding", "connection", "content-encoding"):
                        self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = do_PUT = do_DELETE = _forward

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the stdlib's name
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}{self.path}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
