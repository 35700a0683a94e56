"""Blob-created events: the payload Blob Storage sends through Event Grid, read and made.

Blob Storage announces each new blob with a ``Microsoft.Storage.BlobCreated`` event, in the
Event Grid schema (``eventType``, ``eventTime``) or the CloudEvents 1.0 schema (``type``,
``time``), whichever the subscription chose; both carry the blob in ``subject``
(``/blobServices/default/containers/{container}/blobs/{name}``) and ``data``. The embedded
store announces its writes with the same payload (:func:`blob_created_event`), so the
indexing handler reads one shape in both modes.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

BLOB_CREATED = "Microsoft.Storage.BlobCreated"
# DOTALL: a blob name may hold any character, a line break too (files dropped on disk).
_SUBJECT = re.compile(r"^/blobServices/default/containers/(?P<container>[^/]+)/blobs/(?P<name>.+)\Z", re.DOTALL)


@dataclass(frozen=True)
class BlobCreated:
    """The blob an event announces."""

    container: str
    name: str
    size: int | None = None
    url: str = ""
    event_time: datetime | None = None
    """When storage created the blob, if the event says."""


EventHandler = Callable[[dict[str, Any]], Awaitable[object]]


class BlobEventSource(Protocol):
    """Delivers a store's blob-created events in-process (the embedded stand-in for Event Grid)."""

    def start(self, handler: EventHandler) -> None:
        """Deliver events to ``handler`` from now on (on the running loop)."""
        ...

    async def stop(self) -> None:
        ...


class MalformedEventError(ValueError):
    """A BlobCreated event without the fields every such event has."""


def parse_event(payload: Mapping[str, Any]) -> BlobCreated | None:
    """The blob a ``BlobCreated`` event announces; ``None`` for any other event type.

    Raises :class:`MalformedEventError` for a BlobCreated event whose subject names no blob.
    """
    if payload.get("eventType", payload.get("type")) != BLOB_CREATED:
        return None
    subject = payload.get("subject") or ""
    match = _SUBJECT.match(subject)
    if match is None:
        raise MalformedEventError(f"BlobCreated event with subject {subject!r}: no container and blob in it")
    data = payload.get("data") or {}
    if isinstance(data, str | bytes):  # some transports hand the data over still encoded
        data = json.loads(data)
    size = data.get("contentLength")
    return BlobCreated(
        container=match["container"],
        name=match["name"],
        size=int(size) if size is not None else None,
        url=data.get("url", ""),
        event_time=_parse_time(payload.get("eventTime", payload.get("time"))),
    )


def _parse_time(value: Any) -> datetime | None:
    if not value:
        return None
    try:
        moment = datetime.fromisoformat(str(value))
    except ValueError:
        return None  # the time only tunes a wait; an odd one must not lose the event
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def blob_created_event(container: str, name: str, size: int, url: str, *, topic: str = "embedded") -> dict[str, Any]:
    """An Event Grid schema ``BlobCreated`` event, as Blob Storage would send for ``name``."""
    return {
        "topic": topic,
        "subject": f"/blobServices/default/containers/{container}/blobs/{name}",
        "eventType": BLOB_CREATED,
        "eventTime": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
        "id": str(uuid.uuid4()),
        "data": {
            "api": "PutBlob",
            "contentType": "application/octet-stream",
            "contentLength": size,
            "blobType": "BlockBlob",
            "url": url,
        },
        "dataVersion": "",
        "metadataVersion": "1",
    }
