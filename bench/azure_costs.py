"""The cloud's cost per request: Cosmos DB and Blob Storage calls each DICOMweb operation makes.

    python -m bench.azure_compare --costs

Starts Azurite and the Cosmos DB test server, then ``dicomweb serve`` on them with
``DICOMWEB_BENCH_CALL_LOG`` set (see :mod:`dicomweb.storage.call_log`): every SDK response
is one line in that file. Each operation below runs alone; the calls it caused are the lines
added until the log has been quiet for :data:`QUIET_S` (so background work it triggers,
such as publishing its change-feed entry or the batched summary recount, is counted with
it). Cosmos writes and queries are split into those made before the response and those
made after it (background work), since only the former are on the request's path.
"""

from __future__ import annotations

import collections
import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from bench.cloud_prices import dollars_per_million, estimated_ru
from bench.datagen import MultiFrameSpec, Population, SeriesSpec, patient_for
from tests.support.builders import multipart_body

QUIET_S = 1.0
FRAME_ACCEPT = "application/octet-stream; transfer-syntax=*"


@dataclass
class Counts:
    cosmos_reads: int = 0
    cosmos_writes: int = 0
    cosmos_queries: int = 0
    cross_partition: int = 0
    request_units: float = 0.0
    blob_reads: int = 0
    blob_ranged: int = 0
    blob_writes: int = 0
    blob_lists: int = 0
    blob_deletes: int = 0
    cosmos_writes_after: int = 0
    """Of ``cosmos_writes``, those made after the response (background work)."""
    cosmos_queries_after: int = 0
    detail: collections.Counter[str] = field(default_factory=collections.Counter)
    """Calls by service, kind and Cosmos container: where an operation's calls go."""

    estimated_ru: float = 0.0
    """Request units as Azure would charge them (bench.cloud_prices: estimated on the test server)."""

    def add(self, call: dict[str, Any], *, after: bool = False) -> None:
        kind = call["kind"]
        if call["service"] == "cosmos":
            self.request_units += call.get("charge", 0.0)
            self.estimated_ru += estimated_ru(call)
            if kind == "query" or kind == "list":
                self.cosmos_queries += 1
                self.cosmos_queries_after += after
                self.cross_partition += bool(call.get("cross_partition", kind == "list"))
            elif kind == "read":
                self.cosmos_reads += 1
            else:
                self.cosmos_writes += 1
                self.cosmos_writes_after += after
        elif kind == "read":
            self.blob_reads += 1
            self.blob_ranged += bool(call.get("ranged"))
        elif kind == "write":
            self.blob_writes += 1
        elif kind == "list":
            self.blob_lists += 1
        else:
            self.blob_deletes += 1


    @property
    def dollars_per_million(self) -> float:
        """USD per million of this operation at the list prices of bench.cloud_prices."""
        # Blob listings are left out: they are the server's background scan (about one a
        # second whatever the traffic), a fixed cost, not the operation's.
        return dollars_per_million(self.estimated_ru, {
            "write": self.blob_writes, "read": self.blob_reads, "other": self.blob_deletes})


def _calls_of(log: Path, operation: Callable[[], None]) -> Counts:
    _wait_until_quiet(log)  # the previous operation's background work is not charged here
    before = _lines(log)
    operation()
    answered = _lines(log) - before
    _wait_until_quiet(log)
    counts = Counts()
    with open(log, encoding="utf-8") as reader:
        for number, line in enumerate(list(reader)[before:]):
            call = json.loads(line)
            counts.add(call, after=number >= answered)
            counts.detail[f"{call['service']} {call['kind']} {call.get('container', '')}".strip()] += 1
    return counts


def _wait_until_quiet(log: Path) -> None:
    seen, quiet_since = _lines(log), time.monotonic()
    while time.monotonic() - quiet_since < QUIET_S:
        time.sleep(0.1)
        now = _lines(log)
        if now != seen:
            seen, quiet_since = now, time.monotonic()


def _lines(log: Path) -> int:
    if not log.exists():
        return 0
    with open(log, "rb") as reader:
        return sum(1 for _ in reader)


def measure_costs(root: str, log: Path) -> dict[str, Counts]:
    """Each operation of the issue, once, on a store holding a small population."""
    seed = f"costs-{uuid.uuid4().hex[:8]}"
    population = list(Population(seed=seed, start=0, stop=40).instances())
    single = SeriesSpec(f"{seed}-one", 1, 1, 1, size=64)
    twenty = SeriesSpec(f"{seed}-twenty", 2, 1, 20, size=64)
    slide = MultiFrameSpec(seed=seed, kind="jpeg", frames=16, size=256)
    results: dict[str, Counts] = {}
    with httpx.Client(timeout=120) as http:
        def post(body: bytes, content_type: str = "application/dicom") -> None:
            response = http.post(f"{root}/studies", content=body, headers={"Content-Type": content_type})
            response.raise_for_status()

        def get(path: str, accept: str = "application/dicom+json") -> None:
            http.get(f"{root}{path}", headers={"Accept": accept}).raise_for_status()

        for body in population:  # the population the searches run against (not counted)
            post(body)
        post(slide.build())
        results["STOW 1 instance"] = _calls_of(log, lambda: post(next(single.instances())))
        body, content_type = multipart_body(list(twenty.instances()))
        results["STOW 20 instances, one request (per request)"] = _calls_of(log, lambda: post(body, content_type))
        patient_id = patient_for(seed, 0).patient_id
        results["QIDO instances by PatientID"] = _calls_of(log, lambda: get(f"/instances?PatientID={patient_id}"))
        results["QIDO /studies?limit=100"] = _calls_of(log, lambda: get("/studies?limit=100"))
        series = f"/studies/{twenty.study.study_uid}/series/{twenty.series_uid}"
        results["QIDO /studies/{s}/series"] = _calls_of(log, lambda: get(f"/studies/{twenty.study.study_uid}/series"))
        results["Series metadata (20 instances)"] = _calls_of(log, lambda: get(f"{series}/metadata"))
        extra = SeriesSpec(f"{seed}-twenty", 2, 1, 1, size=64, first=21)  # one more in the same series
        results["STOW 1 instance into an existing series"] = _calls_of(log, lambda: post(next(extra.instances())))
        frames = (f"/studies/{slide.study.study_uid}/series/{slide.series_uid}/instances/{slide.instance_uid}"
                  "/frames/3")
        results["Frame GET, cold"] = _calls_of(log, lambda: get(frames, FRAME_ACCEPT))
        results["Frame GET, hot"] = _calls_of(log, lambda: get(frames, FRAME_ACCEPT))
        results["Change feed page (limit 10)"] = _calls_of(log, lambda: get("/changefeed?limit=10"))
        instance = f"/studies/{single.study.study_uid}/series/{single.series_uid}/instances/{single.instance_uid(1)}"
        results["DELETE one instance"] = _calls_of(log, lambda: http.delete(f"{root}{instance}").raise_for_status())
    order = ["STOW 1 instance", "STOW 1 instance into an existing series"]
    return {name: results[name] for name in order} | {n: c for n, c in results.items() if n not in order}


def cost_table(results: dict[str, Counts]) -> str:
    header = ("| operation | Cosmos reads | writes (in request + after) | queries (after; cross-partition) "
              "| RU (estimated) | Blob reads (ranged) | writes | lists | deletes | $ per million |")
    rows = [header, "|" + "---|" * 10]
    for name, c in results.items():
        writes = f"{c.cosmos_writes - c.cosmos_writes_after} + {c.cosmos_writes_after}"
        queries = f"{c.cosmos_queries} ({c.cosmos_queries_after}; {c.cross_partition})"
        rows.append(f"| {name} | {c.cosmos_reads} | {writes} | {queries} "
                    f"| {c.estimated_ru:.1f} | {c.blob_reads} ({c.blob_ranged}) | {c.blob_writes} | {c.blob_lists} "
                    f"| {c.blob_deletes} | {c.dollars_per_million:.2f} |")
    return "\n".join(rows)


def tally(results: dict[str, Counts]) -> dict[str, dict[str, Any]]:
    return {name: {**vars(counts), "detail": dict(counts.detail), "dollars_per_million": counts.dollars_per_million}
            for name, counts in results.items()}
