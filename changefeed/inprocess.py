"""The embedded event sink: in-process subscribers called for each change entry.

A subscriber's failure is logged and never reaches the STOW that caused the event: the
change feed is the source of truth, and a subscriber that missed events catches up by
reading it (see ``changefeed/follow.py``).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from changefeed.port import ChangeEntry

Subscriber = Callable[[ChangeEntry], Awaitable[None]]

log = logging.getLogger(__name__)


class InProcessEventBus:
    def __init__(self) -> None:
        self._subscribers: list[Subscriber] = []

    @property
    def active(self) -> bool:
        return bool(self._subscribers)

    def subscribe(self, subscriber: Subscriber) -> None:
        self._subscribers.append(subscriber)

    async def publish(self, entries: list[ChangeEntry]) -> None:
        for entry in entries:
            for subscriber in self._subscribers:
                try:
                    await subscriber(entry)
                except Exception:
                    log.exception("event subscriber failed for change %s", entry.sequence)

    async def close(self) -> None:
        self._subscribers.clear()
