"""Azure Functions entry point: a thin adapter around the same ASGI app and the same indexer.

HTTP: host.json sets ``routePrefix`` to ``v1``, so the catch-all HTTP function answers
``/v1/{*route}`` only (the service root, same path as the embedded server) and never
shadows the host's own ``/admin/*`` and ``/runtime/webhooks/*`` routes, where Event Grid
delivers blob events to the trigger below.

Blob created: an Event Grid blob trigger (``source=EventGrid``: pushed within about a
second, no container polling) hands every new blob of the container to
:func:`dicomweb.usecases.blob_created.BlobCreatedHandler`, the handler the embedded server's in-process
bus calls. Why a blob trigger bound as an SDK ``BlobClient`` rather than an
``event_grid_trigger``: with the blob trigger the host owns delivery (the Event Grid
webhook, retries of a failed invocation, the path filter), and the SDK-type binding
(``azurefunctions-extensions-bindings-blob``) makes the host send the worker the blob's
name, not its content (the default binding would load the whole blob into the worker), so
a multi-GB upload dropped into ``incoming/`` costs no memory; the handler then reads only
its header, with ranged reads through the same blob store as the HTTP app. The trigger
does not pass the event's time; the handler copes (see dicomweb/usecases/blob_created.py).

Operations (bulk import, reindex): Durable Functions, registered from dicomweb/durable.py.

Configuration comes from the app settings (``local.settings.json`` ``Values`` locally);
the trigger's ``connection`` names the same setting as the blob store's connection string
(with a managed identity: ``DICOMWEB_BLOB_CONNECTION_STRING__blobServiceUri`` and
``__queueServiceUri``, beside ``DICOMWEB_BLOB_ACCOUNT_URL``).
"""

import azure.functions as func
import azurefunctions.extensions.bindings.blob as blob_sdk

from dicomweb.app import create_app
from dicomweb.composition import build_services
from dicomweb.durable import blueprint
from dicomweb.settings import Settings
from dicomweb.storage.blob_events import BlobCreated

BLOB_CONNECTION = "DICOMWEB_BLOB_CONNECTION_STRING"
BLOB_PATH = "%DICOMWEB_BLOB_CONTAINER%/{name}"

# Event Grid announces dropped files here; the periodic drop-zone scan is the embedded
# server's stand-in for it, so it stays off. Operations run as Durable orchestrations.
services = build_services(Settings.from_env().with_(ingest_scan_seconds=0, operations_runner="durable"))

app = func.AsgiFunctionApp(app=create_app(services.settings, services), http_auth_level=func.AuthLevel.ANONYMOUS)
# Long-running operations (dicomweb/durable.py): a queue starter, the orchestrator, one activity.
app.register_functions(blueprint(services, BLOB_CONNECTION))


@app.blob_trigger(arg_name="blob", path=BLOB_PATH, connection=BLOB_CONNECTION, source=func.BlobSource.EVENT_GRID)
async def blob_created(blob: blob_sdk.BlobClient) -> None:
    await services.blob_created.handle(BlobCreated(container=blob.container_name, name=blob.blob_name, url=blob.url))
