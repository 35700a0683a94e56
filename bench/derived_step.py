"""The embedded STOW store step and the cold reads of derived data, in process:
``python -m bench.derived_step [--instances 300]``.

Stores ``--instances`` ~513 KB CT instances (the benchmark's STOW data) on a fresh embedded
store through the one-trip STOW step (parse, validate, derive, place with fsync, index,
derived data: ``store_instance._read_and_store_blocking``), then reads each instance's frame
index and metadata once (cold: what a first frame GET or a change-feed page asks for).
Prints the process CPU and wall time per instance of each: the part of STOW's CPU that no
HTTP, event loop or other client disturbs, so a before/after comparison survives a loaded
machine better than rates do. Not part of CI: a tool for docs/performance.md.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import anyio

from bench import datagen
from dicomweb.composition import build_services
from dicomweb.settings import Settings
from dicomweb.usecases.store_instance import StagedFile, _read_and_store_blocking


def _store_all(services: Any, paths: list[Path], report: bool = True) -> list[str]:
    keys = []
    cpu, wall = time.process_time(), time.perf_counter()
    for path in paths:
        instance, stored = _read_and_store_blocking(services.store, StagedFile(path), None)
        assert stored
        keys.append(instance.key)
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    if report:
        print(f"store step: CPU {1e3 * cpu / len(paths):.2f} ms/instance, "
              f"wall {1e3 * wall / len(paths):.2f} ms/instance")
    return keys


async def _read_all(label: str, read: Callable[[str], Awaitable[Any]], keys: list[str]) -> None:
    walls = []
    cpu = time.process_time()
    for key in keys:
        started = time.perf_counter()
        await read(key)
        walls.append(time.perf_counter() - started)
    cpu = time.process_time() - cpu
    print(f"cold {label} read: CPU {1e3 * cpu / len(keys):.3f} ms, wall p50 {1e3 * statistics.median(walls):.3f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.derived_step", description=__doc__)
    parser.add_argument("--instances", type=int, default=300)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="derived-step-"))
    try:
        services = build_services(Settings(data_dir=work / "data"))
        spool = work / "spool"
        spool.mkdir()
        paths = []
        series = datagen.SeriesSpec(f"step-{time.time_ns()}", 1, 1, args.instances + 1)
        for number, raw in enumerate(series.instances()):
            path = spool / f"{number}.dcm"
            path.write_bytes(raw)
            paths.append(path)
        _store_all(services, paths[:1], report=False)  # warm-up: the schema, the first connection, imports
        keys = _store_all(services, paths[1:])

        async def reads() -> None:
            await _read_all("frame index", services.sidecars.read_frames, keys)
            await _read_all("metadata", services.sidecars.read_metadata, keys)
            await services.index.close()

        anyio.run(reads)
        print(f"load average {os.getloadavg()[0]:.1f}")
    finally:
        shutil.rmtree(work)


if __name__ == "__main__":
    main()
