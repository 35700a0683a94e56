"""QIDO-RS routes (PS3.18 10.6): the six search resources, answered in DICOM JSON.

The query is parsed by :mod:`indexing.query` and run by the index store; this module
negotiates the media type, keeps the attributes the request should get, and adds each
result's Retrieve URL (0008,1190).
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import replace
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

from dicomweb.api.context import services_of
from dicomweb.api.qido.extended import check_query_enabled, erroneous_keys
from dicomweb.api.qido.headers import add_stored_headers
from dicomweb.http.accept import matches, parse_accept
from dicomweb.http.access import ApiRoute
from dicomweb.http.errors import HTTPError, not_acceptable
from dicomweb.http.urls import instance_url, series_url, service_root, study_url
from dicomweb.identity.permissions import Permission
from indexing.extended_tags import ExtendedTag, extend_table
from indexing.query import (
    SERIES_UID_TAG,
    SOP_UID_TAG,
    STUDY_UID_TAG,
    Level,
    Query,
    QueryError,
    parse_query,
    returned_tags,
)

DICOM_JSON = "application/dicom+json"
PLAIN_JSON = "application/json"
RETRIEVE_URL_TAG = "00081190"

DicomJson = dict[str, Any]


async def search_studies(request: Request) -> Response:
    return await _search(request, Level.STUDY)


async def search_series(request: Request) -> Response:
    return await _search(request, Level.SERIES)


async def search_instances(request: Request) -> Response:
    return await _search(request, Level.INSTANCE)


routes = [
    ApiRoute("/studies", search_studies, methods=["GET"], permission=Permission.READ),
    ApiRoute("/series", search_series, methods=["GET"], permission=Permission.READ),
    ApiRoute("/instances", search_instances, methods=["GET"], permission=Permission.READ),
    ApiRoute("/studies/{study}/series", search_series, methods=["GET"], permission=Permission.READ),
    ApiRoute("/studies/{study}/instances", search_instances, methods=["GET"], permission=Permission.READ),
    ApiRoute("/studies/{study}/series/{series}/instances", search_instances, methods=["GET"],
             permission=Permission.READ),
]


async def _search(request: Request, level: Level) -> Response:
    # PS3.18 8.3.3.1: an "accept" query parameter stands in for the header (browsers).
    media_type = response_media_type(request.query_params.get("accept") or request.headers.get("accept"))
    params = [(key, value) for key, value in request.query_params.multi_items() if key.lower() != "accept"]
    extended = await _extended_tags(request)
    try:
        check_query_enabled(params, extended)
        query = parse_query(
            level,
            params,
            study_uid=request.path_params.get("study"),
            series_uid=request.path_params.get("series"),
            table=extend_table(extended, searchable_only=True) if extended else None,
            max_values=services_of(request).settings.qido_max_values,
        )
    except QueryError as error:
        raise HTTPError(400, error.message) from None
    # One result beyond the limit tells whether more can be asked for.
    found = await _bounded_search(request, replace(query, limit=query.limit + 1))
    results = present(found[: query.limit], query, service_root(request))
    results = await add_stored_headers(services_of(request), results, query)
    headers = {"Warning": _more_results_warning(request, query)} if len(found) > query.limit else {}
    if erroneous := erroneous_keys(params, extended):
        headers["erroneous-dicom-attributes"] = ",".join(erroneous)
    # An empty result is 200 with [] (PS3.18 11.9.3.1, Table 11.9.3-1; 204 was dropped).
    body = _encoded(results)
    return Response(body, media_type=media_type, headers=headers)


def _encoded(results: list[DicomJson]) -> bytes:
    """orjson, not json: encoding 1,000 study results was ~28% of that request's time (a
    profile at 1,000,000 instances, docs/performance.md); it writes UTF-8 as is and compact,
    as json did, and a NaN (never valid JSON) as null. What it refuses (an integer beyond 64
    bits, from an odd stored value) json still writes, rather than failing the search."""
    try:
        return orjson.dumps(results)
    except TypeError:  # orjson.JSONEncodeError is one
        return json.dumps(results, ensure_ascii=False, separators=(",", ":")).encode()


async def _extended_tags(request: Request) -> list[ExtendedTag]:
    registry = services_of(request).extended_tags
    return [] if registry is None else await registry.query_tags()


async def _bounded_search(request: Request, query: Query) -> list[DicomJson]:
    """The search, given at most ``DICOMWEB_QIDO_TIMEOUT_SECONDS``: a backstop (matching is
    linear on both stores) so that no query holds a worker for long. On Cosmos the
    cancelled query stops paging; an SQLite query already in its thread runs to its end."""
    settings = services_of(request).settings
    try:
        return await asyncio.wait_for(services_of(request).index.search(query), settings.qido_timeout_seconds)
    except TimeoutError:
        raise HTTPError(503, f"the search took longer than {settings.qido_timeout_seconds:g} s "
                             "(DICOMWEB_QIDO_TIMEOUT_SECONDS); narrow it (fewer wildcards, a date range)") from None


def response_media_type(accept: str | None) -> str:
    """DICOM JSON, or plain JSON for a client that asks for that alone; else 406."""
    for entry in parse_accept(accept):
        if matches(entry.media_type, DICOM_JSON):
            return DICOM_JSON
        if entry.media_type == PLAIN_JSON:
            return PLAIN_JSON
    raise not_acceptable(f"search results are available as {DICOM_JSON} or {PLAIN_JSON} only")


def present(found: list[DicomJson], query: Query, root: str) -> list[DicomJson]:
    """Results cut to the attributes the request should get, each with its Retrieve URL."""
    tags = returned_tags(query)
    results = []
    for item in found:
        result = {tag: element for tag, element in item.items() if tag in tags}
        result[RETRIEVE_URL_TAG] = {"vr": "UR", "Value": [_retrieve_url(item, query.level, root)]}
        results.append(dict(sorted(result.items())))
    return results


def _retrieve_url(item: DicomJson, level: Level, root: str) -> str:
    study = _uid(item, STUDY_UID_TAG)
    if level is Level.STUDY:
        return study_url(root, study)
    if level is Level.SERIES:
        return series_url(root, study, _uid(item, SERIES_UID_TAG))
    return instance_url(root, study, _uid(item, SERIES_UID_TAG), _uid(item, SOP_UID_TAG))


def _uid(item: DicomJson, tag: str) -> str:
    return str(item[tag]["Value"][0])


def _more_results_warning(request: Request, query: Query) -> str:
    # PS3.18 8.3.4.4: tell the client the results were cut and how to get the rest.
    agent = request.url.netloc or "dicomweb"
    next_offset = query.offset + query.limit
    return f'299 {agent} "There are additional results that can be requested with offset={next_offset}"'
