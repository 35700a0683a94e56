"""Azure Functions entry point: a thin adapter around the same ASGI app and the same indexer.

HTTP: host.json sets ``routePrefix`` to ``v1``, so the catch-all HTTP function answers
``/v1/{*route}`` only (the service root, same path as the embedded server) and never
shadows the host's own ``/admin/*`` and ``/runtime/webhooks/*`` routes.

Blob created: Event Grid delivers the DICOM container's BlobCreated events to a storage
queue; the queue trigger (:mod:`dicomweb.functions.blob_events`) hands each to
:class:`dicomweb.usecases.blob_created.BlobCreatedHandler`, the handler the embedded
server's in-process bus calls. Why a queue rather than the blob trigger's webhook: see
that module and docs/deploy.md.

Operations (bulk import, reindex): Durable Functions, registered from dicomweb/durable.py;
their start queue's ``connection`` is ``DICOMWEB_BLOB_CONNECTION_STRING`` (in Azure, with
the identity: ``DICOMWEB_BLOB_CONNECTION_STRING__queueServiceUri``, ``__credential``,
``__clientId``).

DICOMcast (when ``DICOMWEB_FHIR_URL`` is set): a timer runs one catch-up of the change feed
every 30 seconds (:mod:`dicomweb.cast_trigger`); ``DICOMWEB_FHIR_AUTH=azure`` signs in to the
FHIR service with the app's managed identity. The Functions app never runs the embedded
server's background DICOMcast loop: the timer is its only runner.

Authentication: the app refuses to serve the API without ``DICOMWEB_AUTH_AUTHORITY``
unless ``DICOMWEB_AUTH_DISABLED=true`` (see docs/security.md).

Configuration comes from the app settings (``local.settings.json`` ``Values`` locally; in
Azure the ones infra/modules/functionapp.bicep sets). Telemetry (Application Insights when
``APPLICATIONINSIGHTS_CONNECTION_STRING`` is set) is configured by the composition root.
"""

import azure.functions as func

from dicomweb.app import create_app
from dicomweb.cast_trigger import SCHEDULE, cast_tick
from dicomweb.composition import build_services
from dicomweb.durable import blueprint
from dicomweb.functions.blob_events import blob_events
from dicomweb.settings import Settings

OPERATIONS_QUEUE_CONNECTION = "DICOMWEB_BLOB_CONNECTION_STRING"

# Event Grid announces dropped files here; the periodic drop-zone scan is the embedded
# server's stand-in for it, so it stays off. Operations run as Durable orchestrations. The
# in-process DICOMcast loop stays off too (the timer runs it).
services = build_services(Settings.from_env().with_(ingest_scan_seconds=0, operations_runner="durable",
                                                    cast_poll_seconds=0))

# The API checks bearer tokens itself (DICOMWEB_AUTH_AUTHORITY), so the Functions host lets
# every request through (ANONYMOUS); without an authority the API answers 503 unless
# DICOMWEB_AUTH_DISABLED=true is set explicitly (the emulator tests).
asgi = create_app(services.settings, services, require_authority=True)
app = func.AsgiFunctionApp(app=asgi, http_auth_level=func.AuthLevel.ANONYMOUS)
app.register_functions(blob_events(services.blob_created))
# Long-running operations (dicomweb/durable.py): a queue starter, the orchestrator, one activity.
app.register_functions(blueprint(services, OPERATIONS_QUEUE_CONNECTION))


@app.timer_trigger(arg_name="timer", schedule=SCHEDULE, run_on_startup=False, use_monitor=False)
async def dicomcast(timer: func.TimerRequest) -> None:
    await cast_tick(services)
