"""The change-feed store port and the event sink port.

The feed is append-only and ordered: sequence numbers are assigned in commit order with
no gaps, so a reader paging by sequence never skips an entry (see docs/architecture.md).
``append`` is idempotent on ``entry_id``: repairing a half-done index write never
duplicates an entry.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from enum import StrEnum
from typing import Any, Protocol


class Action(StrEnum):
    """What happened to the instance."""

    CREATE = "create"
    DELETE = "delete"


class State(StrEnum):
    """What the entry's instance is now."""

    CURRENT = "current"
    DELETED = "deleted"


@dataclass
class ChangeEntry:
    entry_id: str
    """Idempotency key: ``{instance_key}:{incarnation}:{action}``."""
    action: Action
    study_uid: str
    series_uid: str
    sop_uid: str
    sop_class_uid: str
    instance_key: str
    incarnation: str
    sequence: int = 0
    """Assigned by the store on append."""
    timestamp: str = ""
    """ISO 8601 UTC, assigned by the store on append."""
    state: State = State.CURRENT

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["action"] = self.action.value
        data["state"] = self.state.value
        return data


class ChangeFeedStore(Protocol):
    async def append(self, entry: ChangeEntry) -> ChangeEntry:
        """Append (or, if ``entry_id`` exists, return the existing entry unchanged)."""
        ...

    async def read(self, after: int, limit: int) -> list[ChangeEntry]:
        """Entries with sequence > ``after``, ascending, at most ``limit``."""
        ...

    async def read_window(self, start: str | None, end: str | None, offset: int, limit: int) -> list[ChangeEntry]:
        """Entries with start <= timestamp < end (ISO 8601 UTC), ascending."""
        ...

    async def latest(self) -> ChangeEntry | None:
        ...

    async def close(self) -> None:
        ...


class EventSink(Protocol):
    """Where change events go: in-process subscribers, or an Event Grid topic."""

    @property
    def active(self) -> bool:
        """False while nobody listens: the publisher then skips the work."""
        ...

    async def publish(self, entries: list[ChangeEntry]) -> None:
        """Deliver events, or raise: :class:`dicomweb.usecases.publish_events.FeedPublisher` retries."""
        ...

    async def close(self) -> None:
        ...
