"""The operations routes: the drop zone's failures first (their fixed path must win over
``/operations/{operation_id}``), then the operations themselves."""

from __future__ import annotations

from dicomweb.api.operations import failures, status

routes = [*failures.routes, *status.routes]
