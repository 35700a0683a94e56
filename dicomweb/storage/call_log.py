"""Counting the cloud's billable calls: one JSON line per Azure SDK response (bench only).

``bench.azure_compare --costs`` starts the server with ``DICOMWEB_BENCH_CALL_LOG=<file>``;
the composition root then gives the Blob and Cosmos clients :func:`call_logger`'s hook
(azure-core's ``raw_response_hook``, which both SDKs run after every HTTP response,
retries included) and the bench counts the lines each operation adds. A line holds the
service, the HTTP method, what kind of call it was and the request charge Cosmos reported:
never a URL, a document or a value (no patient data).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

CALL_LOG_ENV = "DICOMWEB_BENCH_CALL_LOG"


def call_logger(path: Path, service: str) -> Callable[[Any], None]:
    """A ``raw_response_hook`` appending each response of ``service`` ("blob" or "cosmos") to ``path``."""
    lock = threading.Lock()  # the sync and async clients may answer from several threads

    def hook(response: Any) -> None:
        request = response.http_request
        line = json.dumps({"service": service, **describe(request.method, request.headers, request.url),
                           "container": _container(request.url),
                           "status": response.http_response.status_code,
                           "charge": _charge(response.http_response.headers)})
        with lock, open(path, "a", encoding="utf-8") as out:
            out.write(line + "\n")

    return hook


def describe(method: str, headers: Any, url: str) -> dict[str, Any]:
    """The kind of call: Cosmos query (and whether it crossed partitions) or read/write; a
    blob read (ranged or whole), write, list or delete."""
    lowered = {key.lower(): str(value) for key, value in headers.items()}
    if "x-ms-documentdb-isquery" in lowered or lowered.get("content-type", "").startswith("application/query+json"):
        cross = "x-ms-documentdb-partitionkey" not in lowered and "x-ms-documentdb-partitionkeyrangeid" not in lowered
        return {"method": method, "kind": "query", "cross_partition": cross}
    ranged = "x-ms-range" in lowered or "range" in lowered
    if method in ("GET", "HEAD"):
        path = url.split("?")[0].rstrip("/")
        listing = "comp=list" in url or path.endswith("/docs")  # a blob listing, a Cosmos read feed
        return {"method": method, "kind": "list" if listing else "read", "ranged": ranged}
    if method == "DELETE":
        return {"method": method, "kind": "delete"}
    return {"method": method, "kind": "write"}


def _container(url: str) -> str:
    """The Cosmos container (``colls/<name>``) a call went to: our own names, no data."""
    parts = url.split("?")[0].split("/")
    return parts[parts.index("colls") + 1] if "colls" in parts[:-1] else ""


def _charge(headers: Any) -> float:
    try:
        return float(headers.get("x-ms-request-charge") or 0.0)
    except ValueError:
        return 0.0
