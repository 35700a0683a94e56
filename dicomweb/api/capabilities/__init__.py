"""What the server offers, as data: the capabilities summary (``GET /v1``) and the OpenAPI
description (``GET /v1/openapi.json``), both generated from the app's routes."""
