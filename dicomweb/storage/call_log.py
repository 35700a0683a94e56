"""Counting the cloud's billable calls: one JSON line per Azure SDK response (bench only).

``bench.azure_compare --costs`` starts the server with ``DICOMWEB_BENCH_CALL_LOG=<file>``;
the composition root then gives the Blob and Cosmos clients :func:`call_logger`'s hook
(azure-core's ``raw_response_hook``, which both SDKs run after every HTTP response,
retries included) and the bench counts the lines each operation adds. A line holds the
service, the HTTP method, what kind of call it was, the request charge Cosmos reported and
the sizes the bench estimates request units from (the document written or returned, and
for a transactional batch each operation's type and document size): never a URL, a
document or a value (no patient data).
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
        body = _request_body(request)
        kind = describe(request.method, request.headers, request.url)
        if service != "cosmos":
            kind.pop("op", None)  # Cosmos's write verbs; a blob write is one kind of operation
        line = json.dumps({"service": service, **kind,
                           "container": _container(request.url),
                           "status": response.http_response.status_code,
                           "charge": _charge(response.http_response.headers),
                           "sent": len(body), "received": _received(response.http_response),
                           **_batch(request.headers, body)})
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
    if "x-ms-cosmos-is-batch-request" in lowered:
        return {"method": method, "kind": "write", "op": "batch"}
    upsert = lowered.get("x-ms-documentdb-is-upsert", "").lower() == "true"
    op = {"PUT": "replace", "PATCH": "patch"}.get(method, "upsert" if upsert else "create")
    return {"method": method, "kind": "write", "op": op}


def _request_body(request: Any) -> bytes:
    body = getattr(request, "body", None) or getattr(request, "content", None) or b""
    return body.encode() if isinstance(body, str) else body if isinstance(body, bytes) else b""


def _received(response: Any) -> int:
    """The response body's size: Content-Length, else the body the SDK read."""
    length = response.headers.get("content-length")
    if length is not None and str(length).isdigit():
        return int(length)
    try:
        return len(response.body())
    except Exception:  # a streamed body not read yet: size unknown  # noqa: BLE001
        return 0


def _batch(headers: Any, body: bytes) -> dict[str, Any]:
    """A transactional batch's operations, as [type, size of the document sent]."""
    if not any(key.lower() == "x-ms-cosmos-is-batch-request" for key in headers):
        return {}
    try:
        operations = json.loads(body)
    except ValueError:
        return {}
    return {"operations": [[str(op.get("operationType", "")).lower(),
                            len(json.dumps(op.get("resourceBody") or {}, separators=(",", ":")))]
                           for op in operations if isinstance(op, dict)]}


def _container(url: str) -> str:
    """The Cosmos container (``colls/<name>``) a call went to: our own names, no data."""
    parts = url.split("?")[0].split("/")
    return parts[parts.index("colls") + 1] if "colls" in parts[:-1] else ""


def _charge(headers: Any) -> float:
    try:
        return float(headers.get("x-ms-request-charge") or 0.0)
    except ValueError:
        return 0.0
