"""Readiness: do the blob store and the index answer?

A load balancer (or the Functions host) sends traffic to a process only when both answer.
Each probe is one cheap request whose cost does not grow with the store (the index looks up
an instance by UIDs no instance has — one indexed read, in a single Cosmos partition; counting
its entries took time proportional to its size; the store is asked for the size of a blob
that does not exist, which a reachable store answers with "not found"),
bounded by a timeout so a hung connection makes the check fail instead of hang.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable
from dataclasses import dataclass

from dicomweb.storage.port import BlobNotFoundError, BlobStore
from indexing.port import IndexStore

PROBE_BLOB = "health/ready-probe"
"""A name no instance uses (see :mod:`dicomcore.layout`): asking for its size touches the store only."""

PROBE_UID = "2.25.0"
"""UIDs no instance has (a 2.25 UID is a UUID in decimal; the nil UUID is never generated)."""

PROBE_TIMEOUT_S = 5.0
"""Longer than a healthy store ever takes here, shorter than a load balancer's usual probe timeout."""


@dataclass(frozen=True)
class Readiness:
    checks: dict[str, str]
    """``{"store": "ok", "index": "unreachable: OperationalError"}``: a component and how it answered."""

    @property
    def ready(self) -> bool:
        return all(outcome == "ok" for outcome in self.checks.values())


async def check_readiness(blobs: BlobStore, index: IndexStore, timeout: float = PROBE_TIMEOUT_S) -> Readiness:
    lookup = index.get_instance(PROBE_UID, PROBE_UID, PROBE_UID)
    store, catalog = await asyncio.gather(_probe(_touch_store(blobs), timeout), _probe(lookup, timeout))
    return Readiness({"store": store, "index": catalog})


async def _touch_store(blobs: BlobStore) -> None:
    with contextlib.suppress(BlobNotFoundError):  # "not found" is an answer: the store is there
        await blobs.size(PROBE_BLOB)


async def _probe(call: Awaitable[object], timeout: float) -> str:
    try:
        await asyncio.wait_for(call, timeout)
    except TimeoutError:
        return f"no answer in {timeout:g} s"
    except Exception as error:  # noqa: BLE001 - any failure means "not ready"; the type says which
        # Only the exception's type: messages can carry connection strings or paths.
        return f"unreachable: {type(error).__name__}"
    return "ok"
