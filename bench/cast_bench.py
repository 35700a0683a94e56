"""DICOMcast catch-up rate: a backlog of 5,000 instances in 500 studies synced to a local
FHIR R4 server (SEKMET, PyPI ``sekmet-fhir``).

    python -m bench.cast_bench [--studies 500] [--per-study 10] [--patients 100]

Starts ``dicomweb serve`` on a temporary store and fills it over STOW (one request per
study, two series each), starts the FHIR server, then times one catch-up of the whole
feed by the same code ``dicomweb cast`` runs (feed read in batches of 1,000 entries, one
transaction per study). Reports change-feed entries/s, checks that FHIR ends with one
ImagingStudy per study, and gives the CPU time each process spent: the machine is shared
and noisy, so the rate the busiest process's CPU time allows is the figure that does not
depend on what else runs.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
from pydicom.uid import generate_uid

from dicomweb.composition import build_remote_cast
from tests.support.builders import make_dataset, multipart_body, to_bytes
from tests.support.fhir import FhirServer
from tests.support.servers import ServerProcess


def _store_study(http: httpx.Client, root: str, number: int, per_study: int, patients: int) -> None:
    study, series = generate_uid(), [generate_uid(), generate_uid()]
    parts = [to_bytes(make_dataset(study=study, series=series[i % 2], patient_id=f"BENCH-{number % patients}",
                                   instance_number=i + 1, series_number=i % 2 + 1))
             for i in range(per_study)]
    body, content_type = multipart_body(parts)
    http.post(f"{root}/studies", content=body, headers={"Content-Type": content_type}).raise_for_status()


def _fill(root: str, studies: int, per_study: int, patients: int) -> None:
    with httpx.Client(timeout=120) as http, ThreadPoolExecutor(4) as pool:
        list(pool.map(lambda number: _store_study(http, root, number, per_study, patients), range(studies)))


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux /proc: fields 14 and 15, in clock ticks)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _own_cpu() -> float:
    times = os.times()
    return times.user + times.system


async def _catch_up(fhir_url: str, root: str, state: Path) -> tuple[int, int, float]:
    sync = build_remote_cast(fhir_url, root, state)
    try:
        await sync.check_server()
        started = time.perf_counter()
        result = await sync.catch_up()
        return result.entries, result.studies, time.perf_counter() - started
    finally:
        await sync.close()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.cast_bench", description=__doc__)
    parser.add_argument("--studies", type=int, default=500)
    parser.add_argument("--per-study", type=int, default=10)
    parser.add_argument("--patients", type=int, default=100)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="cast-bench-") as folder:
        server = ServerProcess(Path(folder) / "data")
        fhir = FhirServer(Path(folder) / "fhir")
        try:
            started = time.perf_counter()
            _fill(server.root, args.studies, args.per_study, args.patients)
            print(f"stored {args.studies * args.per_study} instances in {args.studies} studies "
                  f"in {time.perf_counter() - started:.1f} s", flush=True)
            pids = {"FHIR server": fhir.process.pid, "DICOMweb server": server.process.pid}
            cpu_before = {name: _cpu_seconds(pid) for name, pid in pids.items()} | {"sync": _own_cpu()}
            entries, studies, seconds = asyncio.run(_catch_up(fhir.base_url, server.root, Path(folder) / "cast.json"))
            cpu_after = {name: _cpu_seconds(pid) for name, pid in pids.items()} | {"sync": _own_cpu()}
            synced = len(fhir.search("ImagingStudy", _count="1000"))
            load = os.getloadavg()[0]
            print(f"catch-up: {entries} entries ({studies} study transactions) in {seconds:.1f} s = "
                  f"{entries / seconds:.0f} entries/s; FHIR holds {synced} ImagingStudy resources "
                  f"(load average {load:.1f} on {os.cpu_count()} cores)")
            cpu = {name: cpu_after[name] - cpu_before[name] for name in cpu_after}
            print("CPU seconds: " + ", ".join(f"{name} {value:.1f}" for name, value in cpu.items()))
            # Each process is one event loop on one core: the busiest bounds the rate on an idle machine.
            busiest = max(cpu, key=lambda name: cpu[name])
            print(f"rate bound by CPU ({busiest}, one core): {entries / cpu[busiest]:.0f} entries/s")
        finally:
            fhir.stop()
            server.stop()


if __name__ == "__main__":
    main()
