"""Bounded retries with exponential back-off and full jitter (AWS Architecture Blog,
"Exponential Backoff And Jitter"): parallel workers that failed together do not retry in step."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

T = TypeVar("T")


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 6
    first_delay: float = 0.2
    max_delay: float = 5.0

    def delay(self, attempt: int) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (0-based)."""
        return random.uniform(0, min(self.max_delay, self.first_delay * 2**attempt))


async def with_retries(action: Callable[[], Awaitable[T]], policy: RetryPolicy,
                       transient: Callable[[BaseException], bool]) -> T:
    """Run ``action``; retry it on a transient error, at most ``policy.attempts`` times in all."""
    for attempt in range(policy.attempts):
        try:
            return await action()
        except Exception as error:
            if not transient(error) or attempt == policy.attempts - 1:
                raise
            await asyncio.sleep(policy.delay(attempt))
    raise AssertionError("unreachable")
