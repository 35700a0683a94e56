"""The cloud event sink: change entries as CloudEvents on an Event Grid topic.

Types follow the cloud DICOM service's (DicomImageCreated, DicomImageDeleted; this server
never updates an instance in place); data carries the UIDs, the feed's sequence number and the service
root, so a subscriber can fetch the instance or resume the change feed from the event.
A send that fails raises: the :class:`dicomweb.usecases.publish_events.FeedPublisher` retries it
from the feed.
"""

from __future__ import annotations

from typing import Any

from azure.core.credentials import AzureKeyCredential
from azure.core.credentials_async import AsyncTokenCredential
from azure.core.messaging import CloudEvent
from azure.eventgrid.aio import EventGridPublisherClient
from azure.identity.aio import DefaultAzureCredential

from changefeed.port import Action, ChangeEntry

EVENT_TYPES = {
    Action.CREATE: "DicomImageCreated",
    Action.DELETE: "DicomImageDeleted",
}


def event_data(entry: ChangeEntry, service_root: str) -> dict[str, Any]:
    return {
        "imageStudyInstanceUid": entry.study_uid,
        "imageSeriesInstanceUid": entry.series_uid,
        "imageSopInstanceUid": entry.sop_uid,
        "sopClassUid": entry.sop_class_uid,
        "sequenceNumber": entry.sequence,
        "serviceRoot": service_root,
    }


def to_cloud_event(entry: ChangeEntry, service_root: str) -> CloudEvent:
    return CloudEvent(
        source=service_root,
        type=EVENT_TYPES[entry.action],
        subject=f"/studies/{entry.study_uid}/series/{entry.series_uid}/instances/{entry.sop_uid}",
        data=event_data(entry, service_root),
        id=f"{entry.sequence}",
        time=None,
    )


class EventGridSink:
    """Publishes to an Event Grid topic endpoint with an access key, or with no key as
    azure-identity's DefaultAzureCredential (the deployed app's managed identity, which holds
    EventGrid Data Sender on the topic; the topic's keys are disabled)."""

    def __init__(self, endpoint: str, key: str, service_root: str) -> None:
        self.service_root = service_root
        self._credential: AsyncTokenCredential | None = None
        if key:
            self._client = EventGridPublisherClient(endpoint, AzureKeyCredential(key))
        else:
            self._credential = DefaultAzureCredential()
            self._client = EventGridPublisherClient(endpoint, self._credential)

    active = True

    async def publish(self, entries: list[ChangeEntry]) -> None:
        if entries:
            await self._client.send([to_cloud_event(entry, self.service_root) for entry in entries])

    async def close(self) -> None:
        await self._client.close()
        if self._credential is not None:
            await self._credential.close()
