"""URLs the server writes into responses (RetrieveURL, BulkDataURI)."""

from __future__ import annotations

from starlette.requests import Request

SERVICE_PREFIX = "/v1"
"""The service root path. Same locally and in Azure; ``/v2`` can sit beside it later."""


def service_root(request: Request) -> str:
    """``http://host:port/v1`` as the client addressed us (Host header honoured)."""
    return str(request.base_url).rstrip("/") + SERVICE_PREFIX


def study_url(root: str, study_uid: str) -> str:
    return f"{root}/studies/{study_uid}"


def series_url(root: str, study_uid: str, series_uid: str) -> str:
    return f"{root}/studies/{study_uid}/series/{series_uid}"


def instance_url(root: str, study_uid: str, series_uid: str, sop_uid: str) -> str:
    return f"{root}/studies/{study_uid}/series/{series_uid}/instances/{sop_uid}"
