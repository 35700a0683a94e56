"""Profile our server's STOW path: ``python -m bench.stow_profile [--instances N] [--clients C] [--per-request R]``.

Also prints the server's peak resident memory (``VmHWM`` of its processes, summed over
``--workers``), e.g. ``--clients 50 --no-profile`` for the memory goal of 50 concurrent STOW
clients.

Starts ``dicomweb serve`` on a fresh store (127.0.0.1, a free port), sends ~513 KB CT instances
(the benchmark's STOW data) while ``py-spy record --format raw`` samples the server, and prints
the rate and the functions with the most samples (own and total). py-spy must be installed
(``pip install py-spy``); it needs ptrace rights over its child, which a process has over its
own children here. Not part of CI: a tool for docs/performance.md.
"""

from __future__ import annotations

import argparse
import collections
import http.client
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from bench import datagen
from bench.client import STOW_CONTENT_TYPE, multipart

IDLE = {"Runner.run", "QueueListener.dequeue", "Condition.wait", "Queue.get", "select",
        "BaseSelectorEventLoop.select", "EpollSelector.select"}
ROOT = "/v1"  # the service root `dicomweb serve` announces by default


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _announced(process: subprocess.Popen[str]) -> None:
    """Read the server's output until it announces its service root (with ``--workers``: once
    every worker serves), then keep reading it so a full pipe never blocks the server."""
    assert process.stdout is not None
    for line in process.stdout:
        if "service root" in line:
            break
    threading.Thread(target=process.stdout.read, daemon=True).start()


def _wait(port: int, process: subprocess.Popen[bytes] | subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError("the server exited")
        try:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            connection.request("GET", f"{ROOT}/studies?limit=1")
            if connection.getresponse().status == 200:
                return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError("the server did not answer")


def _connect(port: int) -> http.client.HTTPConnection:
    """A kept-alive connection, made (and used once) now: the clients connect one after
    another, as real ones do, not all in the same instant (dicomweb/accept_turns.py)."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
    connection.request("GET", f"{ROOT}/health")
    connection.getresponse().read()
    return connection


def _send(connection: http.client.HTTPConnection, bodies: list[bytes], failures: list[int]) -> None:
    for body in bodies:
        connection.request("POST", f"{ROOT}/studies", body, {"Content-Type": STOW_CONTENT_TYPE,
                                                      "Accept": "application/dicom+json"})
        response = connection.getresponse()
        response.read()
        if response.status != 200:
            failures.append(response.status)


def _peak_rss_mb(pid: int) -> float:
    """Peak resident memory (``VmHWM``) of ``pid`` and its child processes (uvicorn's
    workers, and a reloader's), in MB; Linux only."""
    total_kb = 0
    for process in [pid, *_children(pid)]:
        try:
            status = Path(f"/proc/{process}/status").read_text()
        except OSError:
            continue
        total_kb += next((int(line.split()[1]) for line in status.splitlines() if line.startswith("VmHWM:")), 0)
    return total_kb / 1024


def _cpu_seconds(pid: int) -> tuple[float, float]:
    """User and system CPU time of ``pid`` and its children so far: the server's cost per
    instance, unlike a rate, holds up on a machine that others load."""
    user = system = 0
    for process in [pid, *_children(pid)]:
        try:
            fields = Path(f"/proc/{process}/stat").read_text().rpartition(")")[2].split()
        except OSError:
            continue
        user, system = user + int(fields[11]), system + int(fields[12])  # utime, stime (fields 14, 15)
    ticks = os.sysconf("SC_CLK_TCK")
    return user / ticks, system / ticks


def print_top(own: list[tuple[str, int]], total: list[tuple[str, int]], samples: int, what: str) -> None:
    """The functions with the most own and inclusive samples, as shares of ``samples``."""
    print(f"\n{samples} {what}; top by own samples:")
    for name, n in own:
        print(f"  {100 * n / samples:5.1f}%  {name}")
    print("\ntop by total (inclusive) samples:")
    for name, n in total:
        print(f"  {100 * n / samples:5.1f}%  {name}")


def _children(pid: int) -> list[int]:
    try:
        found = [int(child) for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []
    return found + [grandchild for child in found for grandchild in _children(child)]


def _top(raw: Path, count: int) -> tuple[list[tuple[str, int]], list[tuple[str, int]], int]:
    own: collections.Counter[str] = collections.Counter()
    total: collections.Counter[str] = collections.Counter()
    samples = 0
    for line in raw.read_text().splitlines():
        stack, _, weight = line.rpartition(" ")
        if not stack:
            continue
        n = int(weight)
        if stack.rsplit(";", 1)[-1].split(" (")[0] in IDLE:
            continue  # a worker thread waiting for work, not a cost
        samples += n
        frames = [frame.split(" (")[0] + " (" + frame.split(" (")[-1].split(":")[0].rsplit("/", 1)[-1]
                  for frame in stack.split(";")]
        own[frames[-1]] += n
        for frame in set(frames):
            total[frame] += n
    return own.most_common(count), total.most_common(count), samples


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.stow_profile", description=__doc__)
    parser.add_argument("--instances", type=int, default=200)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--per-request", type=int, default=1)
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--gil", action="store_true", help="sample only the thread holding the GIL (CPU in Python)")
    parser.add_argument("--no-profile", action="store_true", help="measure the rate only")
    parser.add_argument("--workers", type=int, default=1, help="server processes (`dicomweb serve --workers`)")
    args = parser.parse_args()
    py_spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    instances = list(datagen.SeriesSpec(f"profile-{time.time_ns()}", 1, 1, args.instances).instances())
    bodies = [multipart(instances[i:i + args.per_request]) for i in range(0, len(instances), args.per_request)]
    with tempfile.TemporaryDirectory(prefix="stow-profile-") as tmp, open(Path(tmp) / "server.log", "w+") as server_log:
        port = _free_port()
        server = subprocess.Popen([sys.executable, "-m", "dicomweb", "serve", "--host", "127.0.0.1",
                                   "--port", str(port), "--data", str(Path(tmp) / "store"),
                                   "--workers", str(args.workers)],
                                  stdout=subprocess.PIPE, stderr=server_log, text=True)
        spy = None
        gil = ["--gil"] if args.gil else []
        gil += ["--subprocesses"] if args.workers > 1 else []  # uvicorn's workers, not only its supervisor
        try:
            _announced(server)
            _wait(port, server)
            raw = Path(tmp) / "profile.txt"
            if not args.no_profile:
                spy = subprocess.Popen([py_spy, "record", "--format", "raw", "--rate", "250", "--threads", *gil, "-o",
                                        str(raw), "--pid", str(server.pid)], stdout=subprocess.DEVNULL,
                                       stderr=subprocess.DEVNULL)
                time.sleep(1.0)
            failures: list[int] = []
            threads = [threading.Thread(target=_send, args=(_connect(port), bodies[c::args.clients], failures))
                       for c in range(args.clients)]
            cpu_before = _cpu_seconds(server.pid)
            started = time.perf_counter()
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            elapsed = time.perf_counter() - started
            time.sleep(2.5)  # background work a STOW leaves (blob events wait 2 s to settle) counts too
            cpu_after = _cpu_seconds(server.pid)
            user_ms, system_ms = ((after - before) * 1000 / args.instances
                                  for after, before in zip(cpu_after, cpu_before, strict=True))
            print(f"{args.instances} instances, {args.per_request}/request, {args.clients} clients: "
                  f"{args.instances / elapsed:.1f} inst/s ({len(failures)} failed requests); "
                  f"load average {os.getloadavg()[0]:.1f}; server CPU {user_ms + system_ms:.1f} ms/instance "
                  f"({user_ms:.1f} user, {system_ms:.1f} system); "
                  f"server peak RSS {_peak_rss_mb(server.pid):.0f} MB")
            if spy is not None:
                spy.send_signal(2)
                spy.wait(timeout=60)
                print_top(*_top(raw, args.top), "busy samples (idle worker threads left out)")
        finally:
            if spy is not None and spy.poll() is None:
                spy.kill()
            server.terminate()
            server.wait(timeout=30)
            server_log.seek(0)
            for line in server_log:  # each process's index writer waits (indexing/sqlite/writer_waits.py)
                if "index writes:" in line:
                    print(line.strip())
    return 0


if __name__ == "__main__":
    sys.exit(main())
