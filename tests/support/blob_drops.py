"""Putting files straight into a store's container (no STOW), and the events storage sends.

``drop`` writes where a user or a bulk copy would: a file in the embedded store's folder,
or a blob uploaded with the Azure SDK. ``event_grid_event`` and ``cloud_event`` build the
``Microsoft.Storage.BlobCreated`` payloads Blob Storage sends through Event Grid, in its two
schemas, with the fields a real event carries.
"""

from __future__ import annotations

import contextlib
import uuid
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from azure.core.exceptions import ResourceExistsError
from azure.storage.blob import ContainerClient

from dicomweb.settings import Settings

ACCOUNT_TOPIC = (
    "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/dicom/providers/"
    "Microsoft.Storage/storageAccounts/devstoreaccount1"
)


def _container(settings: Settings) -> ContainerClient:
    container = ContainerClient.from_connection_string(settings.blob_connection_string, settings.blob_container)
    with contextlib.suppress(ResourceExistsError):
        container.create_container()
    return container


def drop(settings: Settings, name: str, data: bytes) -> None:
    """Put ``data`` under ``name`` directly in the store's folder or container."""
    if settings.blob_store == "filesystem":
        path = settings.data_dir / "blobs" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        return
    with _container(settings) as container:
        container.upload_blob(name, data, overwrite=True)


def stored_names(settings: Settings, prefix: str) -> list[str]:
    """Names under ``prefix``, read past the server."""
    if settings.blob_store == "filesystem":
        root = settings.data_dir / "blobs"
        return sorted(path.relative_to(root).as_posix() for path in (root / prefix).rglob("*") if path.is_file())
    with _container(settings) as container:
        return sorted(container.list_blob_names(name_starts_with=prefix))


def _blob_url(settings: Settings, name: str) -> str:
    if settings.blob_store == "filesystem":
        return (settings.data_dir / "blobs" / name).as_uri()
    endpoint = next(part.split("=", 1)[1] for part in settings.blob_connection_string.split(";")
                    if part.startswith("BlobEndpoint="))
    return f"{endpoint.rstrip('/')}/{settings.blob_container}/{quote(name)}"


def _data(settings: Settings, name: str, size: int) -> dict[str, Any]:
    return {
        "api": "PutBlob",
        "clientRequestId": str(uuid.uuid4()),
        "requestId": str(uuid.uuid4()),
        "eTag": "0x8DC" + uuid.uuid4().hex[:13].upper(),
        "contentType": "application/octet-stream",
        "contentLength": size,
        "blobType": "BlockBlob",
        "url": _blob_url(settings, name),
        "sequencer": f"{uuid.uuid4().int % 10**32:032d}",
        "storageDiagnostics": {"batchId": str(uuid.uuid4())},
    }


def _subject(settings: Settings, name: str, container: str | None) -> str:
    return f"/blobServices/default/containers/{container or settings.blob_container}/blobs/{name}"


def event_grid_event(settings: Settings, name: str, size: int, *, event_time: datetime | None = None,
                     container: str | None = None, event_type: str = "Microsoft.Storage.BlobCreated") -> dict[str, Any]:
    """A BlobCreated event in the Event Grid schema."""
    return {
        "topic": ACCOUNT_TOPIC,
        "subject": _subject(settings, name, container),
        "eventType": event_type,
        "eventTime": (event_time or datetime.now(UTC)).isoformat().replace("+00:00", "Z"),
        "id": str(uuid.uuid4()),
        "data": _data(settings, name, size),
        "dataVersion": "",
        "metadataVersion": "1",
    }


def cloud_event(settings: Settings, name: str, size: int) -> dict[str, Any]:
    """A BlobCreated event in the CloudEvents 1.0 schema."""
    return {
        "specversion": "1.0",
        "type": "Microsoft.Storage.BlobCreated",
        "source": ACCOUNT_TOPIC,
        "id": str(uuid.uuid4()),
        "time": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
        "subject": _subject(settings, name, None),
        "datacontenttype": "application/json",
        "data": _data(settings, name, size),
    }
