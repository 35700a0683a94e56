"""Running a :class:`~indexing.query.Query` against the SQLite index.

Every match becomes ``<owner pk> IN (SELECT entity_pk FROM <level>_value WHERE tag = ?
AND ...)``: an index range on (tag, value), so a match never scans an entity table (a
search without matches reads the target table in ``pk`` order, up to the page). Results
come in ``pk`` (insertion) order, so limit/offset paging is stable.
"""

from __future__ import annotations

import sqlite3
from typing import Any

from indexing import stored_json
from indexing.attributes import Level
from indexing.query import Match, MatchKind, Query, literal_prefix
from indexing.results import compose_result
from indexing.sqlite.schema import value_table, word_table
from indexing.values import split_name_words

DicomJson = dict[str, Any]

_ALIAS = {Level.STUDY: "s", Level.SERIES: "se", Level.INSTANCE: "i"}

_STUDY_COLUMNS = "s.attributes, s.series_count, s.instance_count, s.modalities, s.sop_classes"
_SERIES_COLUMNS = "se.attributes, se.instance_count"
# The page's pks are chosen first, from the target table alone, and only those rows are
# joined to their parents and JSON: a large offset then skips small rows, not documents.
_JOINS = {
    Level.STUDY: f"SELECT {_STUDY_COLUMNS} FROM page JOIN study AS s ON s.pk = page.pk",
    Level.SERIES: (
        f"SELECT {_STUDY_COLUMNS}, {_SERIES_COLUMNS} FROM page"
        " JOIN series AS se ON se.pk = page.pk JOIN study AS s ON s.pk = se.study_pk"
    ),
    Level.INSTANCE: (
        f"SELECT {_STUDY_COLUMNS}, {_SERIES_COLUMNS}, ij.attributes FROM page"
        " JOIN instance AS i ON i.pk = page.pk JOIN instance_json AS ij ON ij.pk = i.pk"
        " JOIN series AS se ON se.pk = i.series_pk JOIN study AS s ON s.pk = i.study_pk"
    ),
}



def search(connection: sqlite3.Connection, query: Query) -> list[DicomJson]:
    sql, params = compile_search(query)
    return [_result(query.level, row) for row in connection.execute(sql, params)]


def compile_search(query: Query) -> tuple[str, list[Any]]:
    """The SQL and parameters of ``query`` (public for EXPLAIN QUERY PLAN checks)."""
    alias = _ALIAS[query.level]
    conditions, params = _path_conditions(query)
    for match in query.matches:
        subquery, subparams = _match_subquery(match)
        conditions.append(f"{_owner(query.level, match.level)} IN ({subquery})")
        params.extend(subparams)
    where = f" WHERE {' AND '.join(conditions)}" if conditions else ""
    page = f"SELECT {alias}.pk FROM {query.level.value} AS {alias}{where} ORDER BY {alias}.pk LIMIT ? OFFSET ?"
    sql = f"WITH page AS ({page}) {_JOINS[query.level]} ORDER BY page.pk"
    return sql, [*params, query.limit, query.offset]


def _path_conditions(query: Query) -> tuple[list[str], list[Any]]:
    """Conditions for the UIDs in the resource path, each resolved through its unique
    index (an instance search in one series reads only that series' instances)."""
    study_pk = "(SELECT pk FROM study WHERE study_uid = ?)"
    study, series = query.study_uid, query.series_uid
    if query.level is Level.STUDY:
        return (["s.study_uid = ?"], [study]) if study is not None else ([], [])
    if query.level is Level.INSTANCE and series is not None:
        if study is None:
            return ["i.series_pk IN (SELECT pk FROM series WHERE series_uid = ?)"], [series]
        in_study = f"SELECT pk FROM series WHERE study_pk = {study_pk} AND series_uid = ?"
        return [f"i.series_pk = ({in_study})"], [study, series]
    alias = _ALIAS[query.level]
    return ([f"{alias}.study_pk = {study_pk}"], [study]) if study is not None else ([], [])


def _owner(target: Level, level: Level) -> str:
    """The column of the target entity holding the pk of its ``level`` ancestor."""
    alias = _ALIAS[target]
    if level is target:
        return f"{alias}.pk"
    return f"{alias}.{level.value}_pk"


def _match_subquery(match: Match) -> tuple[str, list[Any]]:
    table = value_table(match.level)
    if match.kind in (MatchKind.SINGLE, MatchKind.UID_LIST):
        marks = ", ".join("?" for _ in match.values)
        sql = f"SELECT entity_pk FROM {table} WHERE tag = ? AND value IN ({marks})"
        return sql, [match.tag, *match.values]
    if match.kind is MatchKind.RANGE:
        return _range_subquery(table, match)
    if match.kind is MatchKind.WILDCARD:
        parts = [_pattern_subquery(table, match.tag, pattern) for pattern in match.values]
    else:
        parts = [_fuzzy_subquery(word_table(match.level), match.tag, name) for name in match.values]
    return " UNION ".join(sql for sql, _ in parts), [param for _, params in parts for param in params]


def _range_subquery(table: str, match: Match) -> tuple[str, list[Any]]:
    sql = f"SELECT entity_pk FROM {table} WHERE tag = ?"
    params: list[Any] = [match.tag]
    if match.lower is not None:
        sql += " AND value >= ?"
        params.append(match.lower)
    if match.upper is not None:
        sql += " AND value <= ?"
        params.append(match.upper)
    return sql, params


def _pattern_subquery(table: str, tag: str, pattern: str) -> tuple[str, list[Any]]:
    """A DICOM wildcard pattern as GLOB (case-sensitive, like DICOM; PN keys are
    upper-cased on both sides). The literal prefix bounds an index range."""
    sql = f"SELECT entity_pk FROM {table} WHERE tag = ? AND value GLOB ?"
    params: list[Any] = [tag, to_glob(pattern)]
    prefix = literal_prefix(pattern)
    if prefix:
        sql += " AND value >= ? AND value < ?"
        params += [prefix, prefix + "\U0010ffff"]
    return sql, params


def _fuzzy_subquery(table: str, tag: str, name: str) -> tuple[str, list[Any]]:
    """Names having, for every word of ``name``, a component starting with it."""
    words = split_name_words(name) or [""]
    selects = [f"SELECT entity_pk FROM {table} WHERE tag = ? AND word >= ? AND word < ?" for _ in words]
    params: list[Any] = [param for word in words for param in (tag, word, word + "\U0010ffff")]
    if len(selects) == 1:
        return selects[0], params
    # Wrapped so that a UNION of several names applies to whole intersections.
    return f"SELECT entity_pk FROM ({' INTERSECT '.join(selects)})", params


def to_glob(pattern: str) -> str:
    """DICOM ``*``/``?`` keep their meaning in GLOB; ``[`` is GLOB's only other special
    character, so it is put in a class of its own to stay literal."""
    return pattern.replace("[", "[[]")


def _result(level: Level, row: tuple[Any, ...]) -> DicomJson:
    study_json, series_count, instance_count, modalities, sop_classes = row[:5]
    return compose_result(
        level, stored_json.load(study_json), (series_count, instance_count), stored_json.load(modalities),
        stored_json.load(sop_classes),
        series=stored_json.load(row[5]) if level is not Level.STUDY else None,
        series_instances=row[6] if level is not Level.STUDY else 0,
        instance=stored_json.load(row[7]) if level is Level.INSTANCE else None,
    )
