"""Running blocking work (pydicom parsing, SQLite, file I/O) off the event loop.

The same thread pool Starlette uses (AnyIO's, 40 threads by default), reached without
importing the web framework, so adapters and use cases stay free of HTTP.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar, TypeVarTuple

import anyio.to_thread

T = TypeVar("T")
Args = TypeVarTuple("Args")


async def in_thread(work: Callable[[*Args], T], *args: *Args) -> T:
    """``work(*args)`` in a worker thread."""
    return await anyio.to_thread.run_sync(work, *args)
