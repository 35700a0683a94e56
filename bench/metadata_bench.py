"""Series metadata latency for a large series: ``python -m bench.metadata_bench [--instances 1000]``;
with ``--retrieve``, the study retrieve of ``--instances`` ~513 KB CT instances instead (MB/s).

Starts ``dicomweb serve`` on a fresh store (127.0.0.1, a free port), stores one series of
``--instances`` small CT instances over STOW (the header is what metadata returns; the pixel
size does not matter, so 16×16 keeps the load short), then asks for the series' metadata
``--requests`` times with the benchmark's HTTP client and prints the latency (p50, p90, min),
the server's CPU time per request, and the same for a revalidation (``If-None-Match``, 304).
Not part of CI: a tool for docs/performance.md (the issue's goal: p50 under 100 ms for
1,000 instances). The harness's ``--quick`` run has a 100-instance row only. The server's CPU
time per request (user + system, from ``/proc``) is the figure that moves least when other
processes load the machine.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx

from bench import datagen
from bench.client import STOW_CONTENT_TYPE, multipart
from bench.httpc import Connection
from tests.support.servers import ServerProcess

ACCEPT = {"Accept": "application/dicom+json"}
RETRIEVE_ACCEPT = {"Accept": 'multipart/related; type="application/dicom"; transfer-syntax=*'}


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


def _load(server: ServerProcess, series: datagen.SeriesSpec) -> None:
    instances = list(series.instances())
    batch = 20 if series.size > 64 else 100  # STOW bodies of ~10 MB at most
    with httpx.Client(timeout=300) as http:
        for start in range(0, len(instances), batch):
            response = http.post(f"{server.root}/studies", content=multipart(instances[start:start + batch]),
                                 headers={"Content-Type": STOW_CONTENT_TYPE, "Accept": "application/dicom+json"})
            if response.status_code != 200:
                raise RuntimeError(f"STOW answered {response.status_code}: {response.text[:300]}")


async def _timed(port: int, path: str, headers: dict[str, str], count: int) -> tuple[list[float], int, int]:
    """Latencies (s), the last status and body length."""
    connection = Connection("127.0.0.1", port)
    latencies = []
    status = length = 0
    try:
        for _ in range(count):
            started = time.perf_counter()
            response = await connection.request("GET", path, headers, b"", keep_body=False)
            latencies.append(time.perf_counter() - started)
            status, length = response.status, response.length
    finally:
        await connection.close()
    return latencies, status, length


def _report(label: str, latencies: list[float], cpu: float) -> None:
    ordered = sorted(latencies)
    p90 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.9))]
    print(f"{label}: p50 {statistics.median(ordered) * 1000:.1f} ms, p90 {p90 * 1000:.1f} ms, "
          f"min {ordered[0] * 1000:.1f} ms; server CPU {cpu / len(latencies) * 1000:.1f} ms/request")


def _retrieve(server: ServerProcess, series: datagen.SeriesSpec, requests: int) -> None:
    path = f"/v1/studies/{series.study.study_uid}"
    asyncio.run(_timed(server.port, path, RETRIEVE_ACCEPT, 2))  # warm up: connections, page cache
    cpu = _cpu_seconds(server.process.pid)
    latencies, status, length = asyncio.run(_timed(server.port, path, RETRIEVE_ACCEPT, requests))
    cpu = _cpu_seconds(server.process.pid) - cpu
    if status != 200:
        raise RuntimeError(f"retrieve answered {status}")
    rates = sorted(length / seconds / 1e6 for seconds in latencies)
    print(f"study retrieve, {series.count} instances ({length / 1e6:.1f} MB), {requests} requests, "
          f"load average {os.getloadavg()[0]:.1f}")
    print(f"  median {statistics.median(rates):.0f} MB/s, max {rates[-1]:.0f} MB/s; "
          f"server CPU {cpu / requests * 1000:.1f} ms/request")


def _metadata(server: ServerProcess, series: datagen.SeriesSpec, requests: int) -> None:
    path = f"/v1/studies/{series.study.study_uid}/series/{series.series_uid}/metadata"
    asyncio.run(_timed(server.port, path, ACCEPT, 3))  # warm up: connections, caches
    cpu = _cpu_seconds(server.process.pid)
    latencies, status, length = asyncio.run(_timed(server.port, path, ACCEPT, requests))
    cpu = _cpu_seconds(server.process.pid) - cpu
    if status != 200:
        raise RuntimeError(f"metadata answered {status}")
    print(f"series metadata, {series.count} instances ({length / 1e6:.2f} MB of JSON), "
          f"{requests} requests, load average {os.getloadavg()[0]:.1f}")
    _report("  200", latencies, cpu)
    etag = httpx.get(f"http://127.0.0.1:{server.port}{path}", headers=ACCEPT, timeout=60).headers["etag"]
    cpu = _cpu_seconds(server.process.pid)
    latencies, status, _ = asyncio.run(_timed(server.port, path, {**ACCEPT, "If-None-Match": etag}, requests))
    cpu = _cpu_seconds(server.process.pid) - cpu
    if status != 304:
        raise RuntimeError(f"revalidation answered {status}")
    _report("  304", latencies, cpu)


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.metadata_bench", description=__doc__)
    parser.add_argument("--instances", type=int, default=1000)
    parser.add_argument("--requests", type=int, default=30)
    parser.add_argument("--retrieve", action="store_true", help="time the study retrieve instead")
    args = parser.parse_args()
    # Metadata does not depend on the pixels (16×16 keeps loading short); a retrieve does.
    series = datagen.SeriesSpec(f"metadata-{time.time_ns()}", 1, 1, args.instances, size=512 if args.retrieve else 16)
    with tempfile.TemporaryDirectory(prefix="metadata-bench-") as tmp:
        server = ServerProcess(Path(tmp) / "store")
        try:
            _load(server, series)
            (_retrieve if args.retrieve else _metadata)(server, series, args.requests)
        finally:
            server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
