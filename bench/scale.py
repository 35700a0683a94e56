"""The scale benchmark: fill an embedded store to N instances by bulk import, measuring at checkpoints.

    python -m bench.scale [--instances 1000000] [--checkpoints 10000,100000] [--data DIR]
    python -m bench --scale ...            (the same)
    python -m bench.scale --instances 1000000 --data DIR --keep --resume   (go on filling a kept store)

The store is filled through the fastest honest path a user has: small instances (8×8 CT,
~2 KB, many patients, studies, series, names and dates: :class:`bench.datagen.Population`,
the main benchmark's QIDO population) are written as files into the store's import folder
in batches and imported with ``dicomweb import PREFIX --data DIR --delete-source`` (the
CLI's in-process bulk import, beside the running server; ``deleteSource``, so the disk holds
each file once), ``--import-processes`` batches at once: one process parses on one core
(Python's GIL), two use both (docs/performance.md, "Import speed (session 3)"). Nothing
writes the database directly.

The fill can be done in parts: each finished batch and each checkpoint is recorded in
``DIR/scale-state.json``; ``--resume`` (with ``--data DIR`` of a store kept by ``--keep``)
goes on from the size recorded there, keeping the checkpoints already measured. A batch
under way when a run was stopped is imported again (its stored files count ``skipped``).

At each checkpoint (the sizes in ``--checkpoints`` that are below ``--instances``, and
``--instances`` itself) it restarts the server and measures against it (a server fresh from
start: the last batch's blob-created events would otherwise still be keeping it busy):

- STOW of one small CT instance per request, one client (instances/s);
- the main benchmark's QIDO workloads (:func:`bench.plan.qido_workloads`), p50;
- frame GET p50 (a 64-frame native instance stored at the start) and series metadata p50
  (a 1,000-instance series stored at the start);
- the index's size on disk (``index.sqlite`` and its WAL) per instance;
- the start-up time: the server is stopped and started again on the store, timed from
  launching ``dicomweb serve`` until ``/health/ready`` answers 200 and a QIDO answers, and
  the same start on an empty store right after (on a loaded machine most of a start is
  Python importing the app; the difference is what the store's size costs).

``--measure-only`` measures once on a store kept by an earlier run (``--data DIR --keep``).

It prints a table and writes JSON (``--out``, default ``bench/results/scale-<N>.json``).
Orthanc is not filled: a million instances into it would take most of a day here; the
main benchmark (``python -m bench``) has its 10k/100k QIDO figures beside ours.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from bench import datagen, plan
from bench.client import op_get, op_stow
from tests.support.servers import ServerProcess

DEFAULT_OUT_DIR = Path(__file__).resolve().parent / "results"
IMPORT_PREFIX = "scale"
BATCH = 20_000
"""Files written to the import folder per import operation (bounds the disk the files take)."""
STOW_REQUESTS = 200
"""STOW requests (one instance each) timed per checkpoint."""
QIDO_REQUESTS = 30
FRAME_REQUESTS = 200
METADATA_REQUESTS = 7
METADATA_SERIES = 1_000
FRAMES = 64
FIXTURE_SEED = "scale-fixture"
STARTUP_LIMIT_S = 5.0
IMPORT_PROCESSES = 2
"""Batches imported at once (one ``dicomweb import`` process each)."""
STATE_FILE = "scale-state.json"
ROOT = Path(__file__).resolve().parents[1]


@dataclass
class Checkpoint:
    """What was measured at one store size."""

    instances: int
    stow_per_s: float = 0.0
    qido_p50_ms: dict[str, float] = field(default_factory=dict)
    frame_p50_ms: float = 0.0
    metadata_p50_ms: float = 0.0
    index_bytes_per_instance: float = 0.0
    startup_s: float = 0.0
    startup_empty_s: float = 0.0
    """The same start on an empty store, right after: what start-up costs without the data."""
    load_average: float = 0.0


@dataclass
class Fill:
    """How the store was filled (by this run and the earlier parts it resumed)."""

    files: int = 0
    generate_s: float = 0.0
    """Time spent writing the files (summed over the batches)."""
    import_s: float = 0.0
    """Wall time of the fills, writing the files included (batches overlap)."""

    @property
    def import_files_per_s(self) -> float:
        return self.files / self.import_s if self.import_s else 0.0


class Store:
    """The server under test on a data folder; restartable (the start-up time is measured)."""

    def __init__(self, data: Path, workers: int) -> None:
        self.data = data
        self.workers = workers
        self.server: ServerProcess | None = None

    @property
    def root(self) -> str:
        assert self.server is not None
        return self.server.root

    @property
    def port(self) -> int:
        assert self.server is not None
        return self.server.port

    def start(self) -> float:
        """Start the server; the seconds until it is ready and a QIDO answers."""
        started = time.perf_counter()
        self.server = ServerProcess(self.data, workers=self.workers)
        with httpx.Client(timeout=30) as client:
            while client.get(f"{self.root}/health/ready").status_code != 200:
                time.sleep(0.02)
            response = client.get(f"{self.root}/studies", params={"limit": "1"})
            assert response.status_code in (200, 204), response.text
        return time.perf_counter() - started

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()
            self.server = None


# -- filling ---------------------------------------------------------------------------------


def write_import_files(import_dir: Path, start: int, stop: int) -> int:
    """Write instances ``start``..``stop`` of the population as files; their number."""
    folder = import_dir / IMPORT_PREFIX / f"{start:09d}"
    folder.mkdir(parents=True, exist_ok=True)
    population = datagen.Population(plan.QIDO_SEED, start, stop)
    for offset, blob in enumerate(population.instances()):
        (folder / f"{start + offset:09d}.dcm").write_bytes(blob)
    return stop - start


_COUNTS = re.compile(r"^(\w+): (\d+) imported, (\d+) skipped \(already stored\), (\d+) failed$", re.MULTILINE)


def import_batch(data: Path, start: int) -> dict[str, int]:
    """``dicomweb import scale/<start>/ --data DATA --delete-source``: one batch folder imported
    by the CLI's in-process bulk import; its counts."""
    command = [sys.executable, "-m", "dicomweb", "import", f"{IMPORT_PREFIX}/{start:09d}/", "--data", str(data),
               "--delete-source"]
    run = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=24 * 3600)
    found = _COUNTS.search(run.stdout)
    if run.returncode != 0 or found is None or found.group(1) != "succeeded":
        raise RuntimeError(f"{shlex.join(command)} ended with {run.returncode}: {run.stdout[-2000:]} "
                           f"{run.stderr[-2000:]}")
    return {"imported": int(found.group(2)), "skipped": int(found.group(3)), "failed": int(found.group(4))}


@dataclass
class _Progress:
    """The batches of one fill finished so far (they may finish out of order)."""

    start: int
    batch: int
    finished: set[int] = field(default_factory=set)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def reached(self, stop: int) -> int:
        """The size up to which every batch is finished."""
        size = self.start
        while size < stop and size in self.finished:
            size = min(stop, size + self.batch)
        return size


def fill(data: Path, start: int, stop: int, batch: int, tally: Fill, deadline: float = float("inf"),
         processes: int = IMPORT_PROCESSES) -> int:
    """Import population instances ``start``..``stop``, ``batch`` files per import,
    ``processes`` imports at once, starting no batch after ``deadline`` (``time.monotonic``);
    the size reached (every batch below it finished), recorded in the state file as it grows."""
    progress = _Progress(start, batch)
    began = time.perf_counter()

    def one(first: int) -> None:
        if time.monotonic() > deadline:
            return
        last = min(stop, first + batch)
        writing = time.perf_counter()
        write_import_files(data / "import", first, last)
        written = time.perf_counter()
        results = import_batch(data, first)
        if results["imported"] + results["skipped"] != last - first or results["failed"]:
            raise RuntimeError(f"import of {first}..{last} ended with {results}")
        with progress.lock:
            progress.finished.add(first)
            tally.files += last - first
            tally.generate_s += written - writing
            reached = progress.reached(stop)
            update_state(data, filled=reached)
        print(f"  {last:>9,} instances  import {(last - first) / (time.perf_counter() - written):7.0f} files/s"
              f"  (store at {reached:,})  load {os.getloadavg()[0]:.1f}", file=sys.stderr, flush=True)

    try:
        with ThreadPoolExecutor(processes) as pool:
            list(pool.map(one, range(start, stop, batch)))
    finally:
        tally.import_s += time.perf_counter() - began
    return progress.reached(stop)


def read_state(data: Path) -> dict[str, Any]:
    """What the earlier parts of a run recorded in ``data`` (empty for a new store)."""
    path = data / STATE_FILE
    return json.loads(path.read_text()) if path.exists() else {}


def update_state(data: Path, **changes: Any) -> None:
    """Record ``changes`` in the state file (written whole, then renamed: never half written)."""
    state = read_state(data) | changes
    temporary = data / f".{STATE_FILE}.tmp"
    temporary.write_text(json.dumps(state, indent=2))
    os.replace(temporary, data / STATE_FILE)


# -- measuring -------------------------------------------------------------------------------


def stow(store: Store, dataset: dict[str, Any], per_request: int = 1) -> dict[str, Any]:
    command = {"host": "127.0.0.1", "port": store.port, "path": f"{store.root}/studies", "dataset": dataset,
               "per_request": per_request, "concurrency": 1}
    answer = asyncio.run(op_stow(command))
    if answer["errors"]:
        raise RuntimeError(f"STOW failed: {answer}")
    return answer


def get_p50(store: Store, paths: list[str], accept: str, requests: int) -> float:
    command = {"host": "127.0.0.1", "port": store.port, "paths": paths, "headers": {"Accept": accept},
               "requests": requests, "concurrency": 1}
    answer = asyncio.run(op_get(command))
    if answer["errors"]:
        raise RuntimeError(f"GET {paths[0]} failed: {answer}")
    return float(answer["p50_ms"])


@dataclass(frozen=True)
class Probes:
    """How much each checkpoint measures (smaller for the CI smoke test)."""

    stow_requests: int = STOW_REQUESTS
    metadata_series: int = METADATA_SERIES


def metadata_series(probes: Probes) -> datagen.SeriesSpec:
    return datagen.SeriesSpec(FIXTURE_SEED, 1, 1, probes.metadata_series, size=16)


def frames_instance() -> datagen.MultiFrameSpec:
    return datagen.MultiFrameSpec(FIXTURE_SEED, "native", FRAMES, 128)


def store_fixtures(store: Store, probes: Probes) -> None:
    """The metadata series and the multi-frame instance the reads are timed on."""
    stow(store, plan.series_spec(metadata_series(probes)), per_request=50)
    spec = frames_instance()
    stow(store, {"type": "multiframe", "seed": spec.seed, "kind": "native", "frames": spec.frames,
                 "size": spec.size})


def qido_paths(level: int) -> dict[str, list[str]]:
    """The main benchmark's QIDO queries for a population of ``level`` instances."""
    profile = plan.Profile(**{**plan.QUICK.__dict__, "qido_queries": QIDO_REQUESTS})
    target = _Target(port=0, root="")
    out: dict[str, list[str]] = {}
    for workload in plan.qido_workloads(profile, level):
        command = workload.command(target, 0)  # type: ignore[arg-type]
        out[workload.key.rsplit("-", 1)[0]] = command["paths"]
    return out


@dataclass(frozen=True)
class _Target:
    """What :func:`bench.plan.qido_workloads` reads of a target: its port and service root."""

    port: int
    root: str


def index_bytes(data: Path) -> int:
    return sum(path.stat().st_size for path in data.glob("index.sqlite*"))


def measure(store: Store, instances: int, number: int, probes: Probes) -> Checkpoint:
    """Restart the server (timed), then time the workloads on it: a server fresh from start,
    with no work left from the fill (the blob-created events of the last batch)."""
    point = Checkpoint(instances, load_average=os.getloadavg()[0])
    store.stop()
    point.index_bytes_per_instance = index_bytes(store.data) / instances
    point.startup_s = store.start()
    point.startup_empty_s = empty_start(store.workers)
    stow_set = plan.series_spec(datagen.SeriesSpec(f"scale-stow-{number}", 1, 1, probes.stow_requests,
                                                      size=16))
    point.stow_per_s = float(stow(store, stow_set)["instances_per_s"])
    for key, paths in qido_paths(instances).items():
        point.qido_p50_ms[key] = get_p50(store, [store.root + p for p in paths], plan.QIDO_ACCEPT, QIDO_REQUESTS)
    spec = frames_instance()
    frame_base = f"{store.root}/studies/{spec.study.study_uid}/series/{spec.series_uid}/instances/{spec.instance_uid}"
    point.frame_p50_ms = get_p50(store, [f"{frame_base}/frames/{(i * 37) % FRAMES + 1}" for i in range(FRAMES)],
                                 'multipart/related; type="application/octet-stream"; transfer-syntax=*',
                                 FRAME_REQUESTS)
    meta = metadata_series(probes)
    point.metadata_p50_ms = get_p50(store, [f"{store.root}/studies/{meta.study.study_uid}/series/{meta.series_uid}"
                                            "/metadata"], "application/dicom+json", METADATA_REQUESTS)
    return point


def empty_start(workers: int) -> float:
    """Seconds to start a server on an empty store until ready and a QIDO answers."""
    with tempfile.TemporaryDirectory(prefix="scale-empty-") as folder:
        empty = Store(Path(folder), workers)
        try:
            return empty.start()
        finally:
            empty.stop()


def measure_only(data: Path, instances: int, workers: int, probes: Probes) -> dict[str, Any]:
    """One checkpoint on a store an earlier run kept (``--keep``), without filling it."""
    store = Store(data, workers)
    try:
        store.start()
        point = measure(store, instances, int(time.time()), probes)
    finally:
        store.stop()
    return {"instances": instances, "target": instances, "import_files_per_s": 0.0, "generate_files_per_s": 0.0,
            "file_bytes": 0, "checkpoints": [point.__dict__], "verdicts": verdicts([point])}


# -- the run ---------------------------------------------------------------------------------


def checkpoints(instances: int, sizes: list[int]) -> list[int]:
    return sorted({size for size in sizes if 0 < size < instances} | {instances})


def run(data: Path, instances: int, sizes: list[int], batch: int, workers: int, fill_minutes: float,
        probes: Probes, processes: int = IMPORT_PROCESSES) -> dict[str, Any]:
    """Fill and measure; a store with a state file (``--resume``) goes on from where it was."""
    state = read_state(data)
    store, points = Store(data, workers), [Checkpoint(**point) for point in state.get("checkpoints", [])]
    tally = Fill(**state.get("fill", {}))
    deadline = time.monotonic() + fill_minutes * 60
    filled = int(state.get("filled", 0))
    try:
        store.start()
        if not state:
            store_fixtures(store, probes)
            update_state(data, filled=0)
        for size in checkpoints(instances, sizes):
            if size <= filled and any(point.instances >= size for point in points):
                continue  # filled and measured by an earlier part
            reached = fill(data, filled, size, batch, tally, deadline, processes)
            update_state(data, fill=tally.__dict__)
            if reached > filled or not points or points[-1].instances < reached:
                points.append(measure(store, reached, len(points), probes))
                update_state(data, checkpoints=[point.__dict__ for point in points])
                print(json.dumps(points[-1].__dict__), file=sys.stderr, flush=True)
            filled = reached
            if reached < size:
                print(f"--fill-minutes spent: stopped at {reached:,} instances (--resume goes on)", file=sys.stderr)
                break
    finally:
        store.stop()
    return {"instances": filled, "target": instances, "import_files_per_s": round(tally.import_files_per_s, 1),
            "import_processes": processes,
            "generate_files_per_s": round(tally.files / tally.generate_s, 1) if tally.generate_s else 0.0,
            "file_bytes": len(next(datagen.Population(plan.QIDO_SEED, 0, 1).instances())),
            "checkpoints": [point.__dict__ for point in points], "verdicts": verdicts(points)}


def verdicts(points: list[Checkpoint]) -> dict[str, Any]:
    """The issue's targets: STOW at the last size within 20% of the first; QIDO p50 at the
    last size at most 2× the 100k figures (or the nearest smaller checkpoint's)."""
    first, last = points[0], points[-1]
    base = max((p for p in points[:-1] if p.instances <= 100_000), key=lambda p: p.instances, default=first)
    qido = {key: round(last.qido_p50_ms[key] / base.qido_p50_ms[key], 2) for key in last.qido_p50_ms
            if base.qido_p50_ms.get(key)}
    return {"stow_last_over_first": round(last.stow_per_s / first.stow_per_s, 2) if first.stow_per_s else None,
            "qido_last_over_base": qido, "qido_base_instances": base.instances,
            "startup_max_s": round(max(p.startup_s for p in points), 2),
            "startup_under_limit": all(p.startup_s < STARTUP_LIMIT_S for p in points)}


ROWS = [
    ("STOW 1 inst/request (small CT), 1 client", "inst/s", lambda p: p.stow_per_s),
    ("QIDO PatientID exact p50", "ms", lambda p: p.qido_p50_ms.get("qido-patientid")),
    ("QIDO PatientName=DOE* (limit 1000) p50", "ms", lambda p: p.qido_p50_ms.get("qido-patientname")),
    ("QIDO StudyDate 1-year range, limit=100 p50", "ms", lambda p: p.qido_p50_ms.get("qido-studydate")),
    ("QIDO /studies/{s}/series p50", "ms", lambda p: p.qido_p50_ms.get("qido-series")),
    ("QIDO /studies?limit=100 p50", "ms", lambda p: p.qido_p50_ms.get("qido-studies")),
    (f"Frame GET native (of {FRAMES} frames, 16 KB each) p50", "ms", lambda p: p.frame_p50_ms),
    ("Series metadata p50 (a series of --metadata-series instances)", "ms", lambda p: p.metadata_p50_ms),
    ("Index on disk (index.sqlite + WAL) per instance", "bytes", lambda p: p.index_bytes_per_instance),
    ("Start-up until ready + first QIDO", "s", lambda p: p.startup_s),
    ("… the same on an empty store, right after", "s", lambda p: p.startup_empty_s),
    ("Load average (1 min) at the checkpoint", "", lambda p: p.load_average),
]


def table(points: list[Checkpoint]) -> str:
    head = "| workload | unit | " + " | ".join(f"{p.instances:,}" for p in points) + " |"
    lines = [head, "|---|---|" + "---|" * len(points)]
    for label, unit, read in ROWS:
        cells = [_fmt(read(p)) for p in points]
        lines.append(f"| {label} | {unit} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _fmt(value: float | None) -> str:
    if value is None:
        return "–"
    return f"{value:,.0f}" if value >= 100 else f"{value:.3g}"


@contextmanager
def data_folder(path: Path | None, keep: bool, resume: bool = False) -> Iterator[Path]:
    if path is not None:
        if resume and not (path / STATE_FILE).exists():
            raise SystemExit(f"{path} holds no {STATE_FILE}: --resume goes on with a store an earlier run kept")
        if not resume and path.exists() and any(path.iterdir()):
            raise SystemExit(f"{path} is not empty: the scale run starts from an empty store (or --resume)")
        path.mkdir(parents=True, exist_ok=True)
        yield path
        if not keep:
            shutil.rmtree(path, ignore_errors=True)
        return
    scratch = Path(tempfile.mkdtemp(prefix="scale-bench-"))
    try:
        yield scratch
    finally:
        if not keep:
            shutil.rmtree(scratch, ignore_errors=True)


def _sizes(text: str) -> list[int]:
    return [int(part.replace("_", "")) for part in text.split(",") if part.strip()]


def fill_and_measure(args: argparse.Namespace) -> dict[str, Any]:
    with data_folder(args.data, args.keep, args.resume) as data:
        return run(data, args.instances, args.checkpoints, args.batch, args.workers, args.fill_minutes,
                   Probes(args.stow_requests, args.metadata_series), args.import_processes)


def main(argv: list[str], prog: str = "python -m bench.scale") -> int:
    parser = argparse.ArgumentParser(prog=prog, description=__doc__.splitlines()[0])
    parser.add_argument("--instances", type=int, default=1_000_000, help="instances to fill the store to")
    parser.add_argument("--checkpoints", type=_sizes, default=[10_000, 100_000, 250_000, 500_000],
                        help="sizes to measure at below --instances (comma-separated)")
    parser.add_argument("--batch", type=int, default=BATCH, help="files per import operation")
    parser.add_argument("--data", type=Path, help="an empty folder for the store (default: a temporary one)")
    parser.add_argument("--workers", type=int, default=1, help="pass --workers N to the server")
    parser.add_argument("--fill-minutes", type=float, default=float("inf"),
                        help="start no import batch after this many minutes; measure at the size reached")
    parser.add_argument("--keep", action="store_true", help="keep the store after the run")
    parser.add_argument("--stow-requests", type=int, default=STOW_REQUESTS, help="STOW requests per checkpoint")
    parser.add_argument("--metadata-series", type=int, default=METADATA_SERIES,
                        help="instances in the series whose metadata is timed")
    parser.add_argument("--out", type=Path, help="JSON results (default bench/results/scale-<N>.json)")
    parser.add_argument("--measure-only", action="store_true",
                        help="measure once on the store in --data (kept by an earlier run) holding --instances")
    parser.add_argument("--resume", action="store_true",
                        help="go on filling the store in --data that an earlier run kept (--keep)")
    parser.add_argument("--import-processes", type=int, default=IMPORT_PROCESSES,
                        help="batches imported at once, one `dicomweb import --data` process each")
    args = parser.parse_args(argv)
    if args.resume and args.data is None:
        parser.error("--resume needs --data with a store an earlier run kept")
    if args.instances < 100:
        parser.error("--instances must be at least 100")
    started = time.perf_counter()
    if args.measure_only:
        if args.data is None or not (args.data / "index.sqlite").exists():
            parser.error("--measure-only needs --data with a store an earlier run kept")
        result = measure_only(args.data, args.instances, args.workers, Probes(args.stow_requests,
                                                                              args.metadata_series))
    else:
        result = fill_and_measure(args)
    result |= {"command": shlex.join([*prog.split(), *argv]), "date": time.strftime("%Y-%m-%d %H:%M UTC",
               time.gmtime()), "wall_s": round(time.perf_counter() - started, 1)}
    points = [Checkpoint(**point) for point in result["checkpoints"]]
    out = args.out or DEFAULT_OUT_DIR / f"scale-{args.instances}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    print(table(points))
    print(f"\nimport {result['import_files_per_s']:,} files/s ({result['file_bytes']:,} bytes each); "
          f"verdicts {json.dumps(result['verdicts'])}; JSON {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
