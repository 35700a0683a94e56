"""Extended query tags in a search: disabled tags refused, erroneous keys named.

Results carry a tag's values from the index like a built-in's: the reindex writes them into
the result JSON of entities stored before the tag was added.

A tag that is not ``ready`` is simply absent from the query's table, so the parser refuses
it like any attribute that is not searchable (400 naming it).
"""

from __future__ import annotations

from indexing.extended_tags import ExtendedTag, ExtendedTagError, QueryStatus, parse_path
from indexing.query import QueryError

_CONTROLS = ("includefield", "limit", "offset", "fuzzymatching")


def check_query_enabled(params: list[tuple[str, str]], tags: list[ExtendedTag]) -> None:
    """400 "query is disabled on attribute X" for a key naming a disabled ready tag."""
    disabled = {tag.path for tag in tags if tag.searchable and tag.query_status is QueryStatus.DISABLED}
    if not disabled:
        return
    for key, value in params:
        if key.lower() in _CONTROLS or value.strip() in ("", "*"):
            continue
        try:
            path = parse_path(key)
        except ExtendedTagError:
            continue  # not an attribute: the parser names it
        if path in disabled:
            raise QueryError(key, f"query is disabled on attribute {key}")


def erroneous_keys(params: list[tuple[str, str]], tags: list[ExtendedTag]) -> list[str]:
    """The query keys, as the client wrote them, naming a searchable tag with reindex errors
    (answered in the ``erroneous-dicom-attributes`` header)."""
    erroneous = {tag.path for tag in tags if tag.searchable and tag.error_count}
    found = []
    for key, _ in params:
        if key.lower() in _CONTROLS:
            continue
        try:
            if parse_path(key) in erroneous and key not in found:
                found.append(key)
        except ExtendedTagError:
            continue
    return found
