"""The BlobCreated events of the DICOM container, delivered by Event Grid to a storage queue,
handed to the indexer (:meth:`dicomweb.usecases.blob_created.BlobCreatedHandler.handle_event`).

Why a queue and not the blob trigger's Event Grid webhook: the subscription to a queue is
all bicep, delivered with the system topic's identity, whereas the webhook's URL carries the
Functions system key (a secret) and can only be subscribed after the code is deployed (a
postdeploy hook). The queue also keeps events while the app is stopped or failing, retries a
failed message five times and then parks it in ``<queue>-poison`` (docs/deploy.md).

Event Grid writes each event as base64-encoded JSON (the Event Grid schema); the queue
trigger decodes base64 by default (host.json ``messageEncoding``), so ``get_json`` is the event.
The message holds only the event, never the blob's content: a multi-GB upload costs nothing here.
"""

from __future__ import annotations

import azure.functions as func

from dicomweb.usecases.blob_created import BlobCreatedHandler

QUEUE = "%DICOMWEB_BLOB_EVENTS_QUEUE%"
CONNECTION = "AzureWebJobsStorage"
"""The host's own storage (identity-based ``AzureWebJobsStorage__queueServiceUri``): the
DICOM container, the queue and the host share one account in the deployment."""


def blob_events(handler: BlobCreatedHandler) -> func.Blueprint:
    blueprint = func.Blueprint()

    @blueprint.queue_trigger(arg_name="message", queue_name=QUEUE, connection=CONNECTION)
    async def blob_created(message: func.QueueMessage) -> None:
        await handler.handle_event(message.get_json())

    return blueprint
