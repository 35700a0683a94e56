"""A reference subscriber: follow the change feed from a saved position.

How a FHIR bridge or an AI pipeline consumes the service: read ``/changefeed`` after the
last handled sequence, call the handler for each entry, save the position after each one.
Delivery is at least once: a crash after the handler ran but before the position was
saved hands that entry over again on restart, so handlers should be idempotent (the
sequence number identifies an entry). Nothing is skipped, because the server's sequence
numbers commit in order without gaps.

Command line: ``dicomweb changefeed tail --url http://127.0.0.1:8080/v1 --state pos.json``
prints each entry as a JSON line.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

Entry = dict[str, Any]


class Position:
    """The last handled sequence, in a small JSON file replaced atomically."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def load(self) -> int:
        try:
            return int(json.loads(self.path.read_text())["sequence"])
        except FileNotFoundError:
            return 0

    def save(self, sequence: int) -> None:
        staged = self.path.with_name(self.path.name + ".tmp")
        with open(staged, "w") as out:
            json.dump({"sequence": sequence}, out)
            out.flush()
            os.fsync(out.fileno())
        os.replace(staged, self.path)


def read_page(http: httpx.Client, root: str, after: int, limit: int, metadata: bool) -> list[Entry]:
    response = http.get(f"{root}/changefeed", params={
        "offset": after, "limit": limit, "includeMetadata": str(metadata).lower()})
    response.raise_for_status()
    return response.json()


def follow(root: str, handler: Callable[[Entry], None], position: Position, *, limit: int = 100,
           metadata: bool = False, poll_seconds: float = 1.0, stop_when_idle: bool = False,
           http: httpx.Client | None = None) -> int:
    """Hand every entry after the saved position to ``handler``; return the last sequence.

    Polls every ``poll_seconds`` when caught up, or returns then if ``stop_when_idle``.
    """
    client = http or httpx.Client(timeout=30)
    after = position.load()
    try:
        while True:
            entries = read_page(client, root, after, limit, metadata)
            for entry in entries:
                handler(entry)
                after = entry["sequence"]
                position.save(after)
            if len(entries) < limit:
                if stop_when_idle:
                    return after
                time.sleep(poll_seconds)
    finally:
        if http is None:
            client.close()


def print_entry(entry: Entry) -> None:
    print(json.dumps(entry, separators=(",", ":")), flush=True)
