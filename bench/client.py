"""The load-generator process: ``python -m bench.client``.

It is started once per benchmark run (inside the servers' network namespace) and obeys JSON
commands, one per stdin line, answering each with one JSON line on stdout. Keeping it a
separate, long-lived process means the servers never share an interpreter with the load,
and the instances it sends are generated in it, outside the timed sections.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
import traceback
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from itertools import islice
from typing import Any

from bench import datagen
from bench.httpc import Connection, Response

REQUEST_TIMEOUT = 300.0
BOUNDARY = "benchBoundary7d1f0c3a9e"
STOW_CONTENT_TYPE = f'multipart/related; type="application/dicom"; boundary={BOUNDARY}'
FAILED_SOP_SEQUENCE = "00081198"


def dataset_from(spec: dict[str, Any]) -> Iterator[bytes]:
    """Instances of a data set described by the orchestrator (see ``bench.plan``)."""
    kind = spec["type"]
    if kind == "series":
        return datagen.SeriesSpec(
            spec["seed"],
            spec["study_index"],
            spec["series_number"],
            spec["count"],
            spec["size"],
            spec["first"],
        ).instances()
    if kind == "population":
        return datagen.Population(spec["seed"], spec["start"], spec["stop"]).instances()
    if kind == "multiframe":
        return iter(
            [datagen.MultiFrameSpec(spec["seed"], spec["kind"], spec["frames"], spec["size"]).build()]
        )
    raise ValueError(f"unknown data set type {kind!r}")


def dataset_size(spec: dict[str, Any]) -> int:
    if spec["type"] == "series":
        return spec["count"]
    if spec["type"] == "population":
        return spec["stop"] - spec["start"]
    return 1


def multipart(instances: Iterable[bytes]) -> bytes:
    head = f"--{BOUNDARY}\r\nContent-Type: application/dicom\r\n\r\n".encode()
    pieces: list[bytes] = []
    for data in instances:
        pieces += [head, data, b"\r\n"]
    pieces.append(f"--{BOUNDARY}--\r\n".encode())
    return b"".join(pieces)


def batches(items: Iterator[bytes], size: int) -> Iterator[list[bytes]]:
    while batch := list(islice(items, size)):
        yield batch


@dataclass
class Tally:
    """What a timed run saw: latencies, bytes, and the first failure, if any."""

    latencies: list[float] = field(default_factory=list)
    ok: int = 0
    errors: int = 0
    bytes_in: int = 0
    instances: int = 0
    first_error: str = ""
    statuses: dict[str, int] = field(default_factory=dict)

    def record(self, response: Response | None, elapsed: float, good: bool, problem: str = "") -> None:
        self.latencies.append(elapsed)
        if response is not None:
            key = str(response.status)
            self.statuses[key] = self.statuses.get(key, 0) + 1
            self.bytes_in += response.length
        if good:
            self.ok += 1
        else:
            self.errors += 1
            self.first_error = self.first_error or problem

    def summary(self, wall: float, cpu: float) -> dict[str, Any]:
        ordered = sorted(self.latencies)
        return {
            "requests": len(ordered),
            "succeeded": self.ok,
            "errors": self.errors,
            "first_error": self.first_error,
            "statuses": self.statuses,
            "wall_s": wall,
            "client_cpu_s": cpu,
            "client_cpu_fraction": cpu / wall if wall else 0.0,
            "bytes_in": self.bytes_in,
            "instances": self.instances,
            "p50_ms": percentile(ordered, 50) * 1000,
            "p99_ms": percentile(ordered, 99) * 1000,
            "mean_ms": (sum(ordered) / len(ordered) * 1000) if ordered else 0.0,
            "req_per_s": len(ordered) / wall if wall else 0.0,
        }


def percentile(ordered: list[float], pct: float) -> float:
    """Nearest-rank percentile of an already sorted list (0 for an empty one)."""
    if not ordered:
        return 0.0
    rank = max(1, -(-len(ordered) * pct // 100))
    return ordered[int(rank) - 1]


def stow_failures(response: Response) -> int:
    """Items in the STOW answer's FailedSOPSequence. Orthanc always sends that attribute,
    empty on success, so its mere presence means nothing; an XML answer is not parsed."""
    if "json" not in response.headers.get("content-type", ""):
        return 0
    try:
        answer = json.loads(response.body)
    except ValueError:
        return 0
    if isinstance(answer, list):
        answer = answer[0] if answer else {}
    return len(answer.get(FAILED_SOP_SEQUENCE, {}).get("Value", []))


def describe(response: Response) -> str:
    text = response.body[:300].decode("utf-8", "replace").replace("\n", " ")
    return f"HTTP {response.status} {response.headers.get('content-type', '')}: {text}"


async def timed(conn: Connection, method: str, path: str, headers: dict, body: bytes, keep: bool):
    start = time.perf_counter()
    try:
        response = await asyncio.wait_for(conn.request(method, path, headers, body, keep), REQUEST_TIMEOUT)
    except Exception as exc:  # every failure is a data point, not a crash
        await conn.close()
        return None, time.perf_counter() - start, f"{type(exc).__name__}: {exc}"
    return response, time.perf_counter() - start, ""


async def run_pool(
    host: str, port: int, concurrency: int, count: int, job, max_seconds: float | None = None
) -> tuple[Tally, float, float]:
    """Run ``job(conn, index, tally)`` for index 0..count-1 on ``concurrency`` connections,
    starting no new request after ``max_seconds`` so a slow server cannot stretch the run."""
    tally = Tally()
    counter = iter(range(count))
    conns = [Connection(host, port) for _ in range(concurrency)]
    deadline = time.perf_counter() + max_seconds if max_seconds else float("inf")

    async def worker(conn: Connection) -> None:
        for index in counter:
            await job(conn, index, tally)
            if time.perf_counter() > deadline:
                return

    cpu0, wall0 = time.process_time(), time.perf_counter()
    await asyncio.gather(*(worker(c) for c in conns))
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    for conn in conns:
        await conn.close()
    return tally, wall, cpu


async def op_get(cmd: dict[str, Any]) -> dict[str, Any]:
    """Timed GETs cycling through ``paths``; 2xx (or ``expect``) counts as success."""
    paths: list[str] = cmd["paths"]
    headers: dict[str, str] = cmd.get("headers", {})
    expect = set(cmd.get("expect", [200]))
    keep = bool(cmd.get("keep_body", False))

    async def job(conn: Connection, index: int, tally: Tally) -> None:
        # A body not kept is counted, not copied (an error's body is kept: bench/httpc.py).
        response, elapsed, problem = await timed(conn, "GET", paths[index % len(paths)], headers, b"", keep)
        good = response is not None and response.status in expect
        if response is not None and not good:
            problem = describe(response)
        if response is not None and not keep:
            response.body = b""
        tally.record(response, elapsed, good, problem)

    tally, wall, cpu = await run_pool(
        cmd["host"], cmd["port"], cmd.get("concurrency", 1), cmd["requests"], job, cmd.get("max_seconds")
    )
    return tally.summary(wall, cpu)


async def op_stow(cmd: dict[str, Any]) -> dict[str, Any]:
    """POST a data set as multipart STOW requests of ``per_request`` instances each.

    Bodies are built before the clock starts unless ``stream`` is set (bulk loads whose
    data would not fit comfortably in memory), in which case each is built when needed."""
    per_request = cmd.get("per_request", 1)
    path = cmd["path"]
    headers = {"Content-Type": STOW_CONTENT_TYPE, "Accept": "application/dicom+json"}
    groups = batches(dataset_from(cmd["dataset"]), per_request)
    stream = bool(cmd.get("stream", False))
    bodies: Iterator[tuple[int, bytes]] = (
        ((len(g), multipart(g)) for g in groups) if stream else iter([(len(g), multipart(g)) for g in groups])
    )
    count = -(-dataset_size(cmd["dataset"]) // per_request)

    async def job(conn: Connection, index: int, tally: Tally) -> None:
        size, body = next(bodies)
        response, elapsed, problem = await timed(conn, "POST", path, headers, body, True)
        good = response is not None and 200 <= response.status < 300
        if response is not None and (not good or stow_failures(response)):
            good, problem = False, problem or describe(response)
        tally.record(response, elapsed, good, problem)
        if good:
            tally.instances += size

    tally, wall, cpu = await run_pool(cmd["host"], cmd["port"], cmd.get("concurrency", 1), count, job)
    result = tally.summary(wall, cpu)
    result["instances_per_s"] = tally.instances / wall if wall else 0.0
    return result


async def op_request(cmd: dict[str, Any]) -> dict[str, Any]:
    """One request, answer returned (body as text, cut at ``max_body``) for probes."""
    conn = Connection(cmd["host"], cmd["port"])
    try:
        response, elapsed, problem = await timed(
            conn, cmd.get("method", "GET"), cmd["path"], cmd.get("headers", {}), b"", True
        )
    finally:
        await conn.close()
    if response is None:
        return {"status": 0, "error": problem, "elapsed_ms": elapsed * 1000}
    limit = cmd.get("max_body", 4000)
    extra: dict[str, Any] = {}
    if cmd.get("count_json"):
        # Sanity checks compare how many results each server returns for the same query.
        try:
            parsed = json.loads(response.body) if response.body.strip() else []
            extra["json_items"] = len(parsed) if isinstance(parsed, list) else None
        except ValueError:
            extra["json_items"] = None
    return {
        **extra,
        "status": response.status,
        "headers": response.headers,
        "length": response.length,
        "body": response.body[:limit].decode("utf-8", "replace"),
        "elapsed_ms": elapsed * 1000,
    }


async def op_wait(cmd: dict[str, Any]) -> dict[str, Any]:
    """Poll ``path`` until it answers (any status) or ``timeout`` seconds pass."""
    deadline = time.monotonic() + cmd.get("timeout", 60)
    last = ""
    while time.monotonic() < deadline:
        result = await op_request({**cmd, "max_body": 200})
        if result["status"]:
            return {"ready": True, "status": result["status"]}
        last = result.get("error", "")
        await asyncio.sleep(0.2)
    return {"ready": False, "error": last}


OPS = {"get": op_get, "stow": op_stow, "request": op_request, "wait": op_wait}


def main(ops: dict[str, Any] = OPS) -> None:
    """Answer one JSON command per stdin line with one JSON line (``ops`` by name)."""
    for line in sys.stdin:
        if not line.strip():
            continue
        cmd = json.loads(line)
        try:
            result = {"ok": True, **asyncio.run(ops[cmd["op"]](cmd))}
        except Exception as exc:  # report it to the orchestrator, keep serving
            traceback.print_exc(file=sys.stderr)
            result = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
        sys.stdout.write(json.dumps(result) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
