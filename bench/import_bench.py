"""Bulk import against STOW, on the embedded store, in one run:
``python -m bench.import_bench [--files 10000] [--stow-clients 4]``.

The same small instances are (1) sent to a fresh server by STOW, one instance per request,
from ``--stow-clients`` concurrent clients, and (2) put in a second fresh server's import
folder and imported with ``POST /v1/import``. Both are timed from the first request until
everything is stored (for the import: until the operation is ``succeeded``), and every
instance is checked to be in the index. Prints files/s for each and their ratio.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

from tests.support.builders import many_instances
from tests.support.import_area import wait_for_operation
from tests.support.servers import ServerProcess

STUDY = "1.2.826.0.1.3680043.8.498.7100"


def _instances_stored(root: str) -> int:
    study = httpx.get(f"{root}/studies", params={"StudyInstanceUID": STUDY, "includefield": "00201208"}).json()
    return int(study[0]["00201208"]["Value"][0]) if study else 0


def stow_rate(work: Path, files: list[bytes], clients: int) -> float:
    server = ServerProcess(work / "stow-data")
    try:
        url = f"{server.root}/studies"

        def send(batch: list[bytes]) -> None:
            with httpx.Client(timeout=60) as client:
                for blob in batch:
                    response = client.post(url, content=blob, headers={"Content-Type": "application/dicom",
                                                                       "Accept": "application/dicom+json"})
                    assert response.status_code == 200, response.text

        started = time.perf_counter()
        with ThreadPoolExecutor(clients) as pool:
            list(pool.map(send, [files[i::clients] for i in range(clients)]))
        seconds = time.perf_counter() - started
        assert _instances_stored(server.root) == len(files)
        return len(files) / seconds
    finally:
        server.stop()


def import_rate(work: Path, files: list[bytes]) -> float:
    data = work / "import-data"
    for i, blob in enumerate(files):
        path = data / "import" / "bench" / f"{i // 1000:03d}" / f"{i:06d}.dcm"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(blob)
    server = ServerProcess(data)
    try:
        started = time.perf_counter()
        href = httpx.post(f"{server.root}/import", json={"source": {"prefix": "bench/"}}).json()["href"]
        operation = wait_for_operation(httpx.get, href, timeout=3600)
        seconds = time.perf_counter() - started
        assert operation["status"] == "succeeded" and operation["results"]["imported"] == len(files), operation
        assert _instances_stored(server.root) == len(files)
        return len(files) / seconds
    finally:
        server.stop()


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.import_bench", description=__doc__)
    parser.add_argument("--files", type=int, default=10_000)
    parser.add_argument("--stow-clients", type=int, default=4, help="concurrent STOW clients")
    args = parser.parse_args(argv)
    files = many_instances(STUDY, args.files)
    with tempfile.TemporaryDirectory(prefix="import-bench-") as scratch:
        stow = stow_rate(Path(scratch), files, args.stow_clients)
        imported = import_rate(Path(scratch), files)
    result = {"command": shlex.join(["python", "-m", "bench.import_bench", *argv]), "files": args.files,
              "file_bytes": len(files[0]), "stow_files_per_s": round(stow, 1), "import_files_per_s": round(imported, 1),
              "import_over_stow": round(imported / stow, 2)}
    print(json.dumps(result, indent=2))
    return 0 if imported > stow else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
