"""``dicomweb import PREFIX``: start a bulk import and watch it to the end with a progress bar.

Against a running server (``--url``, default ``http://127.0.0.1:8080/v1``) it is a client
of ``POST /v1/import`` and ``GET /v1/operations/{id}``; with ``--data`` it runs the same
operation in this process over the embedded store (no server needed; interrupted, it
resumes when a server next starts on that folder).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
from tqdm import tqdm

POLL_SECONDS = 0.5


def _watch(read: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """Poll ``read`` (the operation's JSON) with a progress bar until it is terminal."""
    with tqdm(total=100, unit="%", desc="import", bar_format="{l_bar}{bar}| {n}% [{elapsed}]") as bar:
        while True:
            operation = read()
            bar.update(operation["percentComplete"] - bar.n)
            results = operation.get("results") or {}
            bar.set_postfix({key: results.get(key, 0) for key in ("imported", "skipped", "failed")})
            if operation["status"] in ("succeeded", "failed", "canceled"):
                return operation
            time.sleep(POLL_SECONDS)


def _report(operation: dict[str, Any]) -> int:
    results = operation.get("results") or {}
    print(f"{operation['status']}: {results.get('imported', 0)} imported, {results.get('skipped', 0)} skipped "
          f"(already stored), {results.get('failed', 0)} failed")
    if results.get("failed"):
        print(f"the files that failed, and why: {results.get('errorHref', 'GET /v1/operations/{id}/errors')}")
    for error in operation.get("errors", []):
        print(error)
    return 0 if operation["status"] == "succeeded" and not results.get("failed") else 1


def import_remote(url: str, prefix: str, delete_source: bool) -> int:
    with httpx.Client(timeout=30) as client:
        response = client.post(f"{url}/import", json={"source": {"prefix": prefix}, "deleteSource": delete_source})
        if response.status_code != 202:
            print(f"the server refused the import ({response.status_code}): {response.text}")
            return 2
        href = response.json()["href"]
        return _report(_watch(lambda: client.get(href).json()))


def import_in_process(data: Path, prefix: str, delete_source: bool) -> int:
    from dicomweb.composition import build_services
    from dicomweb.settings import Settings
    from dicomweb.storage.port import ImportAreaError
    from dicomweb.usecases.import_files import TYPE, import_input, starting_results
    from dicomweb.usecases.operations.lifecycle import start_operation

    settings = Settings.from_env().with_(data_dir=data, operations_runner="local", ingest_scan_seconds=0)

    async def run() -> int:
        services = build_services(settings)
        try:
            try:
                services.import_areas(None).check_prefix(prefix)
            except ImportAreaError as exc:
                print(f"prefix refused: {exc}")
                return 2
            assert services.local_runner is not None
            state = await start_operation(services.operations, services.local_runner, TYPE,
                                          import_input(prefix, None, delete_source),
                                          results=starting_results())
            loop = asyncio.get_running_loop()

            def read() -> dict[str, Any]:
                current = asyncio.run_coroutine_threadsafe(services.operations.get(state.operation_id), loop).result()
                assert current is not None
                return {"status": current.status.value, "percentComplete": current.percent_complete,
                        "results": current.results, "errors": [current.error] if current.error else []}

            operation = await asyncio.to_thread(_watch, read)
            print(f"operation {state.operation_id}; error log: blobs/state/operations/{state.operation_id}/errors/")
            return _report(operation)
        finally:
            await services.close()

    return asyncio.run(run())
