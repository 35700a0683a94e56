"""The server's CPU per trivial request: ``python -m bench.request_overhead [--requests N] [--path P]``.

Starts ``dicomweb serve`` on a fresh store (127.0.0.1, a free port; the request log on, as
``dicomweb serve`` runs by default), sends ``--requests`` GETs of ``--path`` (default
``/v1/health``: audited, traced, through every middleware, no I/O of its own) on one kept-alive
connection, and prints the server's user + system CPU per request: the cost of the middleware
stack, the audit line and the telemetry hooks. CPU per request, unlike a rate, holds up on a
machine that others load. Not part of CI: a tool for docs/performance.md.
"""

from __future__ import annotations

import argparse
import http.client
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.stow_profile import _cpu_seconds, _free_port, _wait


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.request_overhead", description=__doc__)
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--path", default="/v1/health")
    parser.add_argument("--quiet", action="store_true", help="serve without the request log (`--quiet`)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="request-overhead-") as tmp:
        port = _free_port()
        server = subprocess.Popen([sys.executable, "-m", "dicomweb", "serve", "--host", "127.0.0.1",
                                   "--port", str(port), "--data", str(Path(tmp) / "store"),
                                   *(["--quiet"] if args.quiet else [])],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            _wait(port, server)
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            for _ in range(50):  # warm-up: imports, caches, the connection
                connection.request("GET", args.path)
                connection.getresponse().read()
            time.sleep(0.5)
            user0, system0 = _cpu_seconds(server.pid)
            started = time.perf_counter()
            for _ in range(args.requests):
                connection.request("GET", args.path)
                response = connection.getresponse()
                response.read()
                if response.status != 200:
                    raise RuntimeError(f"GET {args.path} answered {response.status}")
            elapsed = time.perf_counter() - started
            user1, system1 = _cpu_seconds(server.pid)
            per_request_us = ((user1 - user0) + (system1 - system0)) * 1e6 / args.requests
            print(f"{args.requests} x GET {args.path}: {args.requests / elapsed:.0f} req/s; server CPU "
                  f"{per_request_us:.0f} us/request ({(user1 - user0) * 1e6 / args.requests:.0f} user, "
                  f"{(system1 - system0) * 1e6 / args.requests:.0f} system); "
                  f"load average {os.getloadavg()[0]:.1f}")
        finally:
            server.terminate()
            server.wait(timeout=30)
    return 0


if __name__ == "__main__":
    sys.exit(main())
