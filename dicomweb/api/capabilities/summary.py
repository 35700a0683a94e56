"""The capabilities summary served at ``GET /v1``: what docs/conformance.md states, as JSON.

The resources of each transaction are read from the route table, so they cannot drift from
what is served; the media types and options are the ones docs/conformance.md lists (kept
beside it: change one, change the other).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from starlette.routing import BaseRoute

from dicomweb import __version__
from dicomweb.api.capabilities.openapi import endpoints, feature_of
from dicomweb.settings import Settings

TRANSACTIONS: dict[str, dict[str, Any]] = {
    "stow": {
        "name": "STOW-RS (PS3.18 §10.5)",
        "requestMediaTypes": ['multipart/related; type="application/dicom"', "application/dicom"],
        "responseMediaTypes": ["application/dicom+json"],
    },
    "qido": {
        "name": "QIDO-RS (PS3.18 §10.6)",
        "responseMediaTypes": ["application/dicom+json"],
        "options": ["limit", "offset", "includefield", "fuzzymatching (person names)", "wildcards * ?", "UID lists",
                    "date and time ranges"],
    },
    "wado": {
        "name": "WADO-RS (PS3.18 §10.4)",
        "responseMediaTypes": ['multipart/related; type="application/dicom"', "application/dicom",
                               "application/dicom+json", 'multipart/related; type="application/octet-stream"',
                               "image/jpeg", "image/png", "image/gif"],
        "options": ["frames", "bulkdata", "rendered", "thumbnail", "stored transfer syntax unless asked"],
    },
    "delete": {"name": "Delete (study, series, instance)"},
    "changefeed": {"name": "Change feed (ordered, offset/limit or time window)"},
    "operations": {"name": "Operations (long-running work and its status, ingest failures)"},
    "importing": {"name": "Bulk import (from the import area, as an operation)"},
}


def store_mode(settings: Settings) -> str:
    """``embedded`` (folder + SQLite), ``azure`` (Blob Storage + Cosmos DB), or ``mixed``."""
    if settings.blob_store == "filesystem" and settings.index_store == "sqlite":
        return "embedded"
    if settings.blob_store == "azure" and settings.index_store == "cosmos":
        return "azure"
    return "mixed"


def capabilities(routes: Sequence[BaseRoute], settings: Settings, service_root: str) -> dict[str, Any]:
    resources: dict[str, list[str]] = {}
    for info in endpoints(routes):
        resources.setdefault(feature_of(info.func), []).append(f"{info.http_method.upper()} {info.path}")
    transactions = {
        feature: {**facts, "resources": sorted(resources.get(feature, []))}
        for feature, facts in TRANSACTIONS.items() if feature in resources
    }
    return {
        "server": "dicomweb-server",
        "version": __version__,
        "serviceRoot": service_root,
        "store": {"mode": store_mode(settings), "blobs": settings.blob_store, "index": settings.index_store},
        "transactions": transactions,
        "openapi": f"{service_root}/openapi.json",
        "conformance": "docs/conformance.md",
    }
