"""``python -m bench.hostile [--azure]``: the cost of the hostile inputs of issue 10 on a
real ``dicomweb serve`` process (peak RSS from /proc, wall time), and with ``--azure`` the
Cosmos wildcard probe, linear regex against the backtracking one it replaced.

Prints one line per probe; docs/robustness.md quotes the results.
"""

from __future__ import annotations

import argparse
import tempfile
import time
import uuid
from pathlib import Path

import httpx
from starlette.testclient import TestClient

from tests.support.builders import DICOM, make_dataset, multipart_body, to_bytes
from tests.support.hostile import deflate_bomb
from tests.support.servers import ServerProcess


def _peak_rss_mib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM"):
            return int(line.split()[1]) // 1024
    return -1


def embedded_probes() -> None:
    server = ServerProcess(Path(tempfile.mkdtemp()) / "data")
    try:
        pid = server.process.pid
        with httpx.Client(timeout=600) as http:
            http.get(f"{server.root}/studies")
            print(f"server peak RSS at start: {_peak_rss_mib(pid)} MiB")
            bomb, _ = deflate_bomb(2 * 1024**3)
            body, content_type = multipart_body([bomb])
            started = time.monotonic()
            response = http.post(f"{server.root}/studies", content=body, headers={"Content-Type": content_type})
            print(f"deflate bomb ({len(bomb) / 1e6:.1f} MB inflating to 2 GiB): {response.status_code} in "
                  f"{time.monotonic() - started:.1f} s; server peak RSS {_peak_rss_mib(pid)} MiB")
            body, content_type = multipart_body([b"x"] * 100_000)
            started = time.monotonic()
            response = http.post(f"{server.root}/studies", content=body, headers={"Content-Type": content_type})
            print(f"100,000 one-byte parts: {response.status_code} in {time.monotonic() - started:.1f} s")
            ds = make_dataset(frames=2)
            http.post(f"{server.root}/studies", content=to_bytes(ds), headers={"Content-Type": DICOM})
            url = (f"{server.root}/studies/{ds.StudyInstanceUID}/series/{ds.SeriesInstanceUID}/instances/"
                   f"{ds.SOPInstanceUID}/frames/" + ",".join(["1"] * 29_000))
            started = time.monotonic()
            response = http.get(url)
            print(f"frames URL of {len(url) // 1000} KB (one frame 29,000 times): {response.status_code}, "
                  f"{len(response.content)} bytes in {time.monotonic() - started:.2f} s")
            print(f"server peak RSS at the end: {_peak_rss_mib(pid)} MiB")
    finally:
        server.stop()


def _backtracking_regex(pattern: str) -> str:
    """The translation used before: ``*`` as ``[\\s\\S]*``, which backtracks."""
    from indexing.cosmos.search import _REGEX_SPECIAL

    out = ["[\\s\\S]*" if c == "*" else "[\\s\\S]" if c == "?" else "\\" + c if c in _REGEX_SPECIAL else c
           for c in pattern]
    return "^" + "".join(out) + "$"


def cosmos_probe() -> None:
    from dicomweb.app import create_app
    from dicomweb.settings import Settings
    from indexing.cosmos import search
    from tests.support.emulators import start_azurite, start_cosmos

    azurite, cosmos = start_azurite(), start_cosmos()
    try:
        fresh = uuid.uuid4().hex[:12]
        settings = Settings(data_dir=Path(tempfile.mkdtemp()), blob_store="azure",
                            blob_connection_string=azurite.connection_string, blob_container=f"h-{fresh}",
                            index_store="cosmos", cosmos_endpoint=cosmos.endpoint, cosmos_key=cosmos.key,
                            cosmos_database=f"h-{fresh}")
        linear = search.to_regex
        with TestClient(create_app(settings)) as client:
            ds = make_dataset()
            ds.StudyDescription = "A" * 64
            client.post("/v1/studies", content=to_bytes(ds), headers={"Content-Type": DICOM})
            client.get("/v1/studies", params={"StudyDescription": "*B"})  # warm-up
            for name, translate in (("linear", linear), ("backtracking (before)", _backtracking_regex)):
                search.to_regex = translate  # type: ignore[assignment]
                started = time.monotonic()
                client.get("/v1/studies", params={"StudyDescription": "*A*A*A*A*A*B"})
                print(f"Cosmos test server, *A*A*A*A*A*B against 64 x 'A', one document, {name}: "
                      f"{time.monotonic() - started:.2f} s")
        search.to_regex = linear  # type: ignore[assignment]
    finally:
        azurite.stop()
        cosmos.stop()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.hostile", description=__doc__)
    parser.add_argument("--azure", action="store_true", help="also the Cosmos wildcard probe (node needed)")
    args = parser.parse_args()
    embedded_probes()
    if args.azure:
        cosmos_probe()


if __name__ == "__main__":
    main()
