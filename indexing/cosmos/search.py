"""A :class:`~indexing.query.Query` as a Cosmos DB SQL query over the index documents.

Each :class:`~indexing.query.Match` becomes a condition on the document's match keys
(:mod:`indexing.cosmos.schema`), keys made by :mod:`indexing.values` exactly as the
SQLite store's are, so both stores compare the same strings the same way:

==========================  ============================================================
match                       condition on ``c.m[tag]`` (or ``c.w[tag]``)
==========================  ============================================================
single value, UID list      some key ``IN`` the values
range                       some key ``>=`` lower and ``<=`` upper
wildcard (``*``, ``?``)     some key ``STARTSWITH`` the literal prefix (index range) and
                            ``RegexMatch``-es the pattern (``*`` any run, ``?`` one
                            character, everything else literal: GLOB's meaning), a regex
                            that cannot backtrack (see :func:`to_regex`)
fuzzy person name           for every word of the value, some name word ``STARTSWITH`` it
==========================  ============================================================

Only constructs that real Cosmos and the Cosmos test server both support are used (no
OFFSET/LIMIT, DISTINCT or GROUP BY): ``limit``/``offset`` are a keyset on ``pos``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from indexing.attributes import Level
from indexing.query import Match, MatchKind, Query, literal_prefix
from indexing.values import split_name_words

_TAG_PATH = re.compile(r"[0-9A-F]{8}(\.[0-9A-F]{8})*")
_REGEX_SPECIAL = frozenset("\\^$.|?*+()[]{}/")


@dataclass
class CosmosQuery:
    """Conditions (ANDed) and their parameters; ``partition`` when the path fixes the study."""

    conditions: list[str] = field(default_factory=list)
    parameters: dict[str, Any] = field(default_factory=dict)
    partition: str | None = None

    def parameter(self, value: Any) -> str:
        name = f"@p{len(self.parameters)}"
        self.parameters[name] = value
        return name

    def where(self) -> str:
        return " AND ".join(self.conditions)


def compile_filter(query: Query, matches: tuple[Match, ...], studies: list[str] | None = None) -> CosmosQuery:
    """The documents of ``query.level`` in its path that satisfy ``matches`` (and, given
    ``studies``, belong to one of them)."""
    compiled = CosmosQuery()
    compiled.conditions.append(f"c.type = {compiled.parameter(query.level.value)}")
    if query.level is not Level.INSTANCE:
        # Study and series documents are made just before their first instance: until
        # that instance is counted (or after the last is removed) they are not results.
        compiled.conditions.append("c.instance_count > 0")
    if query.study_uid is not None:
        compiled.conditions.append(f"c.study_uid = {compiled.parameter(query.study_uid)}")
        compiled.partition = query.study_uid
    if query.series_uid is not None and query.level is Level.INSTANCE:
        compiled.conditions.append(f"c.series_uid = {compiled.parameter(query.series_uid)}")
    if studies is not None:
        compiled.conditions.append(f"ARRAY_CONTAINS({compiled.parameter(studies)}, c.study_uid)")
    for match in matches:
        compiled.conditions.append(_condition(compiled, match))
    return compiled


def _condition(compiled: CosmosQuery, match: Match) -> str:
    if not _TAG_PATH.fullmatch(match.tag):  # tags are inlined as property names
        raise ValueError(f"not a tag path: {match.tag!r}")
    keys = f'c.m["{match.tag}"]'
    if match.kind in (MatchKind.SINGLE, MatchKind.UID_LIST):
        names = ", ".join(compiled.parameter(value) for value in match.values)
        return f"EXISTS(SELECT VALUE v FROM v IN {keys} WHERE v IN ({names}))"
    if match.kind is MatchKind.RANGE:
        bounds = []
        if match.lower is not None:
            bounds.append(f"v >= {compiled.parameter(match.lower)}")
        if match.upper is not None:
            bounds.append(f"v <= {compiled.parameter(match.upper)}")
        return f"EXISTS(SELECT VALUE v FROM v IN {keys} WHERE {' AND '.join(bounds) or 'true'})"
    if match.kind is MatchKind.WILDCARD:
        return _any(_pattern(compiled, keys, pattern) for pattern in match.values)
    words = f'c.w["{match.tag}"]'
    return _any(_fuzzy(compiled, words, name) for name in match.values)


def _any(conditions: Any) -> str:
    return "(" + " OR ".join(conditions) + ")"


def _pattern(compiled: CosmosQuery, keys: str, pattern: str) -> str:
    tests = []
    prefix = literal_prefix(pattern)
    if prefix:
        tests.append(f"STARTSWITH(v, {compiled.parameter(prefix)})")
    if prefix != pattern:
        tests.append(f"RegexMatch(v, {compiled.parameter(to_regex(pattern))})")
    return f"EXISTS(SELECT VALUE v FROM v IN {keys} WHERE {' AND '.join(tests)})"


def _fuzzy(compiled: CosmosQuery, words: str, name: str) -> str:
    parts = [
        f"EXISTS(SELECT VALUE w FROM w IN {words} WHERE STARTSWITH(w, {compiled.parameter(word)}))"
        for word in split_name_words(name) or [""]
    ]
    return "(" + " AND ".join(parts) + ")"


def to_regex(pattern: str) -> str:
    """A DICOM wildcard pattern as an anchored regular expression that runs in linear time.

    The plain translation (``*`` → ``[\\s\\S]*``) backtracks catastrophically: ``*A*A*A*A*A*B``
    against a long run of ``A`` tries every way to split it (36 s per document on the test
    server). A wildcard pattern needs no backtracking: split at ``*``, the first segment must
    match at the start, the last at the end, and each middle segment can be taken at its
    leftmost occurrence (segments have a fixed length, ``?`` being one character), which is
    what ``(?=([\\s\\S]*?SEG))\\N`` does: the lookahead finds the leftmost occurrence and the
    back-reference consumes it atomically (JavaScript has no atomic groups; lookaheads are
    atomic in JavaScript, .NET and PCRE alike). So the cost is at most the value's length
    times the pattern's. ``[\\s\\S]`` rather than ``.``: ``*`` spans line breaks as GLOB does.
    """
    segments = pattern.split("*")
    if len(segments) == 1:
        return "^" + _segment(pattern) + "$"
    first, *middle, last = segments
    out = ["^", _segment(first)]
    group = 0
    for segment in middle:
        if not segment:
            continue  # ``**`` is ``*``
        group += 1
        out.append(f"(?=([\\s\\S]*?{_segment(segment)}))\\{group}")
    out.append("[\\s\\S]*" + _segment(last) + "$")
    return "".join(out)


def _segment(text: str) -> str:
    """Literal characters, ``?`` as any one character."""
    return "".join("[\\s\\S]" if char == "?" else "\\" + char if char in _REGEX_SPECIAL else char
                   for char in text)
