"""Azure Functions entry point: a thin adapter around the same ASGI app.

host.json sets ``routePrefix`` to ``v1``, so the catch-all HTTP function answers
``/v1/{*route}`` only (the service root, same path as the embedded server) and never
shadows the host's own ``/admin/*`` and ``/runtime/webhooks/*`` routes.
Configuration comes from the app settings (``local.settings.json`` ``Values`` locally).
"""

import azure.functions as func

from dicomweb.app import create_app

app = func.AsgiFunctionApp(app=create_app(), http_auth_level=func.AuthLevel.ANONYMOUS)
