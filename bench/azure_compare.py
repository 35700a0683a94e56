"""Frame GET latency and STOW rate: the embedded store beside the Azure adapters on the emulators.

    python -m bench.azure_compare                      # both configurations, default sizes
    python -m bench.azure_compare --stow 300 --frames 500 --clients 4
    python -m bench.azure_compare --costs              # Cosmos and Blob calls per operation (bench.azure_costs)

Each configuration gets a fresh ``python -m dicomweb serve`` (one worker) on a free
loopback port; the Azure one points at Azurite and the Cosmos DB test server started by
``tests/support/emulators.py``. STOW: small CT instances (8×8), one per request, from
``--clients`` threads. Frame GET: single-part ``application/octet-stream`` frames of a
64-frame 256×256 JPEG instance, one client, random frames. The emulators are
single-process Node servers on the same 2 cores, so the Azure figures measure our
adapters' round trips more than the cloud services' speed.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

from bench.azure_costs import cost_table, measure_costs, tally
from bench.datagen import MultiFrameSpec, Population
from dicomweb.storage.call_log import CALL_LOG_ENV
from tests.support.emulators import azure_environment, start_azurite, start_cosmos
from tests.support.servers import ServerProcess

ROOT = Path(__file__).resolve().parent.parent


FRAME_ACCEPT = "application/octet-stream; transfer-syntax=*"


def _percentile(ordered: list[float], pct: float) -> float:
    return ordered[min(len(ordered) - 1, int(round(pct / 100 * (len(ordered) - 1))))]


def measure(root: str, stow_count: int, frame_count: int, clients: int) -> dict[str, float]:
    instances = list(Population(seed="azure-compare", start=0, stop=stow_count).instances())
    slide = MultiFrameSpec(seed="azure-compare", kind="jpeg", frames=64, size=256)

    def store(part: list[bytes]) -> int:
        failures = 0
        with httpx.Client(timeout=120) as http:
            for body in part:
                response = http.post(
                    f"{root}/studies", content=body, headers={"Content-Type": "application/dicom"}
                )
                failures += response.status_code != 200
        return failures

    started = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        failures = sum(pool.map(store, [instances[i::clients] for i in range(clients)]))
    stow_seconds = time.perf_counter() - started
    if failures:
        raise RuntimeError(f"{failures} STOW requests failed")

    with httpx.Client(timeout=120) as http:
        response = http.post(
            f"{root}/studies", content=slide.build(), headers={"Content-Type": "application/dicom"}
        )
        response.raise_for_status()
        url = f"{root}/studies/{slide.study.study_uid}/series/{slide.series_uid}/instances/{slide.instance_uid}/frames"
        rng = random.Random(7)
        for _ in range(20):  # warm the connection, caches and the server's frame index
            http.get(f"{url}/{rng.randint(1, 64)}", headers={"Accept": FRAME_ACCEPT}).raise_for_status()
        latencies = []
        for _ in range(frame_count):
            frame = rng.randint(1, 64)
            begin = time.perf_counter()
            response = http.get(f"{url}/{frame}", headers={"Accept": FRAME_ACCEPT})
            latencies.append((time.perf_counter() - begin) * 1000)
            response.raise_for_status()
    latencies.sort()
    return {
        "stow_per_second": round(stow_count / stow_seconds, 1),
        "frame_p50_ms": round(statistics.median(latencies), 2),
        "frame_p99_ms": round(_percentile(latencies, 99), 2),
        "frame_bytes": len(response.content),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--stow", type=int, default=200, help="instances stored (default 200)")
    parser.add_argument("--frames", type=int, default=400, help="frame requests timed (default 400)")
    parser.add_argument("--clients", type=int, default=4, help="concurrent STOW clients (default 4)")
    parser.add_argument("--only", choices=["embedded", "azure"], help="run one configuration")
    parser.add_argument("--costs", action="store_true", help="count the cloud calls of each operation instead")
    args = parser.parse_args()
    if args.costs:
        costs()
        return

    results: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory(prefix="azure-compare-") as workspace:
        if args.only in (None, "embedded"):
            server = ServerProcess(Path(workspace) / "embedded")
            try:
                results["embedded"] = measure(server.root, args.stow, args.frames, args.clients)
            finally:
                server.stop()
        if args.only in (None, "azure"):
            azurite, cosmos = start_azurite(), start_cosmos()
            try:
                server = ServerProcess(Path(workspace) / "azure", env=azure_environment(azurite, cosmos))
                try:
                    results["azure"] = measure(server.root, args.stow, args.frames, args.clients)
                finally:
                    server.stop()
            finally:
                azurite.stop()
                cosmos.stop()

    print(f"{'configuration':<14}{'STOW/s':>10}{'frame p50 ms':>15}{'frame p99 ms':>15}")
    for name, figures in results.items():
        print(
            f"{name:<14}{figures['stow_per_second']:>10}{figures['frame_p50_ms']:>15}{figures['frame_p99_ms']:>15}"
        )
    print(json.dumps(results))


def costs() -> None:
    with tempfile.TemporaryDirectory(prefix="azure-costs-") as workspace:
        log = Path(workspace) / "calls.jsonl"
        azurite, cosmos = start_azurite(), start_cosmos()
        try:
            env = {**azure_environment(azurite, cosmos), CALL_LOG_ENV: str(log)}
            server = ServerProcess(Path(workspace) / "azure", env=env)
            try:
                results = measure_costs(server.root, log)
            finally:
                server.stop()
        finally:
            azurite.stop()
            cosmos.stop()
    print(cost_table(results))
    print(json.dumps(tally(results)))


if __name__ == "__main__":
    main()
