"""includefield answered from the stored headers (instance searches).

The index holds the attributes of its table; a client may ask for any other attribute of
an instance (a whole-slide client asks for 37: Samples per Pixel, Total Pixel Matrix
Columns, Image Type, ...). Those come from each result's stored metadata, the DICOM JSON
written at STOW, read in one batch for the page of results (never a file read per
result); bulk data is left out.
"""

from __future__ import annotations

from typing import Any

from dicomcore import layout
from dicomcore.dicomjson import without_bulk_data
from dicomweb.api.context import Services
from dicomweb.storage.port import BlobNotFoundError
from indexing import stored_json
from indexing.query import SERIES_UID_TAG, SOP_UID_TAG, STUDY_UID_TAG, Level, Query

DicomJson = dict[str, Any]


def wants_headers(query: Query) -> bool:
    return query.level is Level.INSTANCE and (query.include_all or bool(query.header_tags))


async def add_stored_headers(services: Services, results: list[DicomJson], query: Query) -> list[DicomJson]:
    """``results`` with the asked-for attributes their stored headers have."""
    if not wants_headers(query) or not results:
        return results
    keys = [layout.instance_key(_uid(item, STUDY_UID_TAG), _uid(item, SERIES_UID_TAG), _uid(item, SOP_UID_TAG))
            for item in results]
    try:
        headers = await services.sidecars.read_metadata_many(keys)
    except BlobNotFoundError:  # an instance deleted since the search: answer the others
        headers = [await _header_or_nothing(services, key) for key in keys]
    return [_merged(item, stored_json.load(raw), query) for item, raw in zip(results, headers, strict=True)]


async def _header_or_nothing(services: Services, key: str) -> bytes:
    try:
        return await services.sidecars.read_metadata(key)
    except BlobNotFoundError:
        return b"{}"


def _merged(result: DicomJson, header: DicomJson, query: Query) -> DicomJson:
    merged = dict(result)
    for tag, element in header.items():
        if tag in merged or not (query.include_all or tag in query.header_tags):
            continue
        kept = without_bulk_data(element)
        if kept is not None:
            merged[tag] = kept
    return dict(sorted(merged.items()))


def _uid(item: DicomJson, tag: str) -> str:
    return str(item[tag]["Value"][0])
