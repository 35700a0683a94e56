"""Series metadata latency for a large series: ``python -m bench.metadata_bench [--instances 1000]``;
with ``--retrieve``, the study retrieve of ``--instances`` ~513 KB CT instances instead (MB/s, time to
the response's headers; ``--clients N``: N retrieves at once, aggregate MB/s).

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
import contextlib
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

from bench import datagen, stow_profile
from bench.client import STOW_CONTENT_TYPE, multipart
from bench.httpc import Connection
from tests.support.servers import ServerProcess

ACCEPT = {"Accept": "application/dicom+json"}
RETRIEVE_ACCEPT = {"Accept": 'multipart/related; type="application/dicom"; transfer-syntax=*'}


def _cpu_seconds(pid: int) -> float:
    return sum(_cpu_split(pid))


def _cpu_split(pid: int) -> tuple[float, float]:
    """The process's user and system CPU time so far (s)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return int(fields[11]) / ticks, int(fields[12]) / ticks  # utime, stime


def _load(server: ServerProcess, series: datagen.SeriesSpec) -> None:
    instances = list(series.instances())
    batch = 20 if series.size > 64 else 100  # STOW bodies of ~10 MB at most
    with httpx.Client(timeout=300) as http:
        for start in range(0, len(instances), batch):
            response = http.post(f"{server.root}/studies", content=multipart(instances[start:start + batch]),
                                 headers={"Content-Type": STOW_CONTENT_TYPE, "Accept": "application/dicom+json"})
            if response.status_code != 200:
                raise RuntimeError(f"STOW answered {response.status_code}: {response.text[:300]}")


async def _timed(port: int, path: str, headers: dict[str, str], count: int
                 ) -> tuple[list[float], list[float], int, int]:
    """Latencies and times to the response's headers (s), the last status and body length."""
    connection = Connection("127.0.0.1", port)
    latencies, heads = [], []
    status = length = 0
    try:
        for _ in range(count):
            started = time.perf_counter()
            response = await connection.request("GET", path, headers, b"", keep_body=False)
            latencies.append(time.perf_counter() - started)
            heads.append(response.head_at - started)
            status, length = response.status, response.length
    finally:
        await connection.close()
    return latencies, heads, status, length


async def _concurrently(port: int, path: str, headers: dict[str, str], count: int, clients: int
                        ) -> tuple[list[float], list[float], int, int, float]:
    """:func:`_timed` on ``clients`` connections at once (``count`` requests each), and the wall time."""
    started = time.perf_counter()
    runs = await asyncio.gather(*(_timed(port, path, headers, count) for _ in range(clients)))
    wall = time.perf_counter() - started
    latencies = [latency for run in runs for latency in run[0]]
    heads = [head for run in runs for head in run[1]]
    return latencies, heads, runs[-1][2], runs[-1][3], wall


def _report(label: str, latencies: list[float], cpu: float) -> None:
    ordered = sorted(latencies)
    p90 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.9))]
    print(f"{label}: p50 {statistics.median(ordered) * 1000:.1f} ms, p90 {p90 * 1000:.1f} ms, "
          f"min {ordered[0] * 1000:.1f} ms; server CPU {cpu / len(latencies) * 1000:.1f} ms/request")


@contextlib.contextmanager
def _profiled(pid: int, how: str | None, requests: int) -> Iterator[None]:
    """Sample the server while the block runs: ``py-spy`` (Python stacks, the thread holding
    the GIL) or ``strace`` (system calls and their time, every thread); prints the top."""
    if how is None:
        yield
        return
    with tempfile.TemporaryDirectory(prefix="retrieve-profile-") as tmp:
        out = Path(tmp) / "profile.txt"
        if how == "py-spy":
            py_spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
            argv = [py_spy, "record", "--format", "raw", "--rate", "500", "--threads", "--gil", "-o", str(out),
                    "--pid", str(pid)]
        else:
            argv = ["strace", "-c", "-f", "-o", str(out), "-p", str(pid)]
        spy = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(1.0)
        try:
            yield
        finally:
            spy.send_signal(signal.SIGINT)
            spy.wait(timeout=60)
        if how == "py-spy":
            stow_profile.print_top(*stow_profile._top(out, 20), "samples holding the GIL")
        else:
            print(f"\nsystem calls of the server during the {requests} timed requests (strace -c -f):")
            print(out.read_text())


def _retrieve(server: ServerProcess, series: datagen.SeriesSpec, requests: int, clients: int,
              profile: str | None = None) -> None:
    path = f"/v1/studies/{series.study.study_uid}"
    asyncio.run(_timed(server.port, path, RETRIEVE_ACCEPT, 2))  # warm up: connections, page cache
    with _profiled(server.process.pid, profile, requests * clients):
        before = _cpu_split(server.process.pid)
        latencies, heads, status, length, wall = asyncio.run(
            _concurrently(server.port, path, RETRIEVE_ACCEPT, requests, clients))
        user, system = (after - start for after, start in zip(_cpu_split(server.process.pid), before, strict=True))
    if status != 200:
        raise RuntimeError(f"retrieve answered {status}")
    rates = sorted(length / seconds / 1e6 for seconds in latencies)
    print(f"study retrieve, {series.count} instances ({length / 1e6:.1f} MB), {requests} requests "
          f"x {clients} client(s), load average {os.getloadavg()[0]:.1f}")
    print(f"  per request: median {statistics.median(rates):.0f} MB/s, max {rates[-1]:.0f} MB/s; "
          f"aggregate {length * len(latencies) / wall / 1e6:.0f} MB/s; time to the headers p50 "
          f"{statistics.median(heads) * 1000:.1f} ms; server CPU {(user + system) / len(latencies) * 1000:.1f} "
          f"ms/request ({user / len(latencies) * 1000:.1f} user, {system / len(latencies) * 1000:.1f} system)")


def _metadata(server: ServerProcess, series: datagen.SeriesSpec, requests: int) -> None:
    path = f"/v1/studies/{series.study.study_uid}/series/{series.series_uid}/metadata"
    asyncio.run(_timed(server.port, path, ACCEPT, 3))  # warm up: connections, caches
    cpu = _cpu_seconds(server.process.pid)
    latencies, _, status, length = asyncio.run(_timed(server.port, path, ACCEPT, requests))
    cpu = _cpu_seconds(server.process.pid) - cpu
    if status != 200:
        raise RuntimeError(f"metadata answered {status}")
    print(f"series metadata, {series.count} instances ({length / 1e6:.2f} MB of JSON), "
          f"{requests} requests, load average {os.getloadavg()[0]:.1f}")
    _report("  200", latencies, cpu)
    etag = httpx.get(f"http://127.0.0.1:{server.port}{path}", headers=ACCEPT, timeout=60).headers["etag"]
    cpu = _cpu_seconds(server.process.pid)
    latencies, _, status, _ = asyncio.run(_timed(server.port, path, {**ACCEPT, "If-None-Match": etag}, requests))
    cpu = _cpu_seconds(server.process.pid) - cpu
    if status != 304:
        raise RuntimeError(f"revalidation answered {status}")
    _report("  304", latencies, cpu)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.metadata_bench", description=__doc__)
    parser.add_argument("--instances", type=int, default=1000)
    parser.add_argument("--requests", type=int, default=30)
    parser.add_argument("--retrieve", action="store_true", help="time the study retrieve instead")
    parser.add_argument("--clients", type=int, default=1, help="concurrent retrieves (with --retrieve)")
    parser.add_argument("--profile", choices=["py-spy", "strace"],
                        help="with --retrieve: sample the server during the timed requests (pip install py-spy)")
    args = parser.parse_args(argv)
    # Metadata does not depend on the pixels (16×16 keeps loading short); a retrieve does.
    series = datagen.SeriesSpec(f"metadata-{time.time_ns()}", 1, 1, args.instances, size=512 if args.retrieve else 16)
    with tempfile.TemporaryDirectory(prefix="metadata-bench-") as tmp:
        server = ServerProcess(Path(tmp) / "store")
        try:
            _load(server, series)
            if args.retrieve:
                _retrieve(server, series, args.requests, args.clients, args.profile)
            else:
                _metadata(server, series, args.requests)
        finally:
            server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
