"""Extended query tags in the Cosmos index documents: indexing new instances, the reindex,
the drop, and the race between a STOW and a reindex start.

Where the values live: in the documents' match-key maps ``m`` and ``w`` under the tag,
exactly like a built-in attribute's keys, so the indexing policy (``/m/*``, ``/w/*``)
covers every extended tag without a container migration and the search compiles them
like built-ins (:mod:`indexing.cosmos.search`).

Which keys a document carries: a document of level L carries the keys of every extended
tag of level L *or above*, made from the dataset of the instance that wrote it (a series
document the study- and series-level tags, an instance document all of them). Built-in
keys are copied down from the study and series documents; extended keys are not, because
those documents may have been made before the tag existed and be patched only later.

No instance is missed between a STOW and the reindex start (there is no write lock to
share, as SQLite has): an add indexes with the definitions it last saw (a cache), and
*after* its instance document is written it reads the definitions again
(:meth:`ExtendedIndexing.after_add`); if the indexed tags changed it patches its study,
series and instance documents (keys added for new tags, removed for dropped ones). Let
``w`` be the instance document's write, ``r`` that read (``w`` < ``r``), ``t`` the commit
of the new tags and ``s`` the reindex start (``t`` < ``s``): if ``r`` > ``t`` the add saw the
tags and carries their keys; otherwise ``w`` < ``r`` < ``t`` < ``s`` and the document exists
before the reindex walks the index, which then patches it. The same argument, with the
``deleting`` commit in place of ``t``, holds for the drop. (It relies on a read that
starts after a write was acknowledged seeing that write: true of Strong consistency and of
a single-region account, which infra/ deploys.)
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable, Iterable
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from typing import Any

from azure.core import MatchConditions
from azure.cosmos.exceptions import CosmosAccessConditionFailedError, CosmosResourceNotFoundError

from indexing.attributes import MATCH, Attribute, AttributeTable, Level
from indexing.cosmos import schema
from indexing.cosmos.extended_tag_store import CosmosExtendedTagStore
from indexing.extended_tags import ExtendedTag
from indexing.port import DicomJson, InstanceRecord
from indexing.records import level_json, match_keys, with_identity

Keys = dict[str, list[str]]
_RETRIES = 100
_PARALLEL = 16
"""Document updates in flight at once during a reindex or a drop."""
_DROP_PAGE = 100
_LEVELS = (Level.STUDY, Level.SERIES, Level.INSTANCE)
_TAG_PATH = re.compile(r"[0-9A-F]{8}(\.[0-9A-F]{8})*")


def tag_table(tags: Iterable[ExtendedTag]) -> AttributeTable:
    """Just the extended tags, as match attributes of their level."""
    return AttributeTable(Attribute(tag.keyword, tag.path, tag.vr, tag.level, MATCH) for tag in tags)


def _signature(tags: Iterable[ExtendedTag]) -> frozenset[tuple[str, str, str]]:
    """What indexing depends on: which tags, of which VR, at which level."""
    return frozenset((tag.path, tag.vr, tag.level.value) for tag in tags if tag.indexed)


def document_keys(table: AttributeTable, level: Level, dataset: DicomJson) -> tuple[Keys, Keys]:
    """The keys of ``table``'s tags of ``level`` and above (what a ``level`` document carries)."""
    keys: Keys = {}
    words: Keys = {}
    for upper in _LEVELS[:_LEVELS.index(level) + 1]:
        found, named = match_keys(table, upper, dataset)
        keys.update(found)
        words.update(named)
    return keys, words


def with_extended_keys(document: dict[str, Any], table: AttributeTable, level: Level,
                       dataset: DicomJson) -> dict[str, Any]:
    """``document`` (a new study, series or instance document) with the extended keys."""
    keys, words = document_keys(table, level, dataset)
    if keys or words:
        document["m"] = {**document["m"], **keys}
        document["w"] = {**document["w"], **words}
    return document


class ExtendedIndexing:
    """The index store's view of the definitions: the last indexed tags seen (a cache that
    new documents are made with) and the check after each add."""

    def __init__(self, definitions: CosmosExtendedTagStore, base: AttributeTable) -> None:
        self.definitions = definitions
        self.base = base
        self.tags: tuple[ExtendedTag, ...] = ()
        self.table = tag_table(())
        """The indexed extended tags alone (their keys are added to every level below theirs)."""
        self.combined = base
        """The store's table plus the indexed extended tags (new documents' attributes and keys)."""

    def _remember(self, tags: Iterable[ExtendedTag]) -> None:
        indexed = tuple(tag for tag in tags if tag.indexed)
        if _signature(indexed) != _signature(self.tags):
            table = tag_table(tag for tag in indexed if not any(e.matchable for e in self.base.by_tag(tag.path)))
            self.tags, self.table = indexed, table
            self.combined = AttributeTable([*self.base.entries, *table.entries])

    async def after_add(self, container: Any, record: InstanceRecord, used: tuple[ExtendedTag, ...]) -> None:
        """Read the definitions again (after the instance document is written) and bring the
        record's documents up to date if the indexed tags changed since ``used`` was read."""
        self._remember(await self.definitions.all())
        if _signature(self.tags) == _signature(used):
            return
        now = {tag.path for tag in self.tags}
        dropped = {tag.path for tag in used} - now
        added = tag_table(tag for tag in self.tags
                          if (tag.path, tag.vr, tag.level.value) not in _signature(used))
        await patch_record(container, [record], added, dropped, attributes=True)


async def patch_record(container: Any, records: list[InstanceRecord], table: AttributeTable,
                       dropped: AbstractSet[str] = frozenset(), *, attributes: bool = False) -> None:
    """Add ``table``'s keys made from ``records`` to their study, series and instance
    documents (a study or series takes the union over its instances) and remove the keys
    of ``dropped`` tags. ``attributes``: also add the tags' values to each document's
    returnable attributes where missing (a new entity made with stale definitions; a
    reindex, so results carry the values from the index as on SQLite)."""
    wanted: dict[tuple[str, str], _Change] = {}
    for record in records:
        dataset = with_identity(record)
        for level, item in ((Level.STUDY, schema.STUDY_ID), (Level.SERIES, schema.series_id(record.series_uid)),
                            (Level.INSTANCE, schema.instance_id(record.series_uid, record.sop_uid))):
            keys, words = document_keys(table, level, dataset)
            change = wanted.setdefault((item, record.study_uid), _Change({}, {}, {}, dropped))
            _merge(change.keys, keys)
            _merge(change.words, words)
            if attributes:
                change.attributes.update({tag: element for tag, element in level_json(table, level, dataset).items()
                                          if tag not in change.attributes})
    gate = asyncio.Semaphore(_PARALLEL)

    async def patch(item: str, study_uid: str, change: _Change) -> None:
        async with gate:
            await update_document(container, item, study_uid, change.apply)

    await asyncio.gather(*(patch(item, study, change) for (item, study), change in wanted.items()))


@dataclass
class _Change:
    """What one document gets: keys and words added (a union), attributes added where
    missing, dropped tags' keys removed."""

    keys: Keys
    words: Keys
    attributes: DicomJson
    dropped: AbstractSet[str]

    def apply(self, document: dict[str, Any]) -> bool:
        """Apply the change to ``document``; whether it changed."""
        before = repr((document.get("m"), document.get("w"), document.get("attrs")))
        for field, add in (("m", self.keys), ("w", self.words)):
            current = document.setdefault(field, {})
            for tag in self.dropped:
                current.pop(tag, None)
            _merge(current, add)
        if self.attributes:
            document["attrs"] = {**self.attributes, **document.get("attrs", {})}
        return repr((document.get("m"), document.get("w"), document.get("attrs"))) != before


def _merge(into: Keys, keys: Keys) -> None:
    for tag, values in keys.items():
        into[tag] = sorted({*into.get(tag, []), *values})


async def update_document(container: Any, item: str, study_uid: str,
                          change: Callable[[dict[str, Any]], bool]) -> None:
    """Read-modify-replace with the ETag, retried on 412 (the summaries are replaced the same
    way, so neither write loses the other's); a document gone meanwhile is left alone."""
    for _ in range(_RETRIES):
        try:
            document = await container.read_item(item, partition_key=study_uid)
        except CosmosResourceNotFoundError:
            return
        if not change(document):
            return
        try:
            await container.replace_item(item, document, etag=document["_etag"],
                                         match_condition=MatchConditions.IfNotModified)
            return
        except CosmosAccessConditionFailedError:
            continue
        except CosmosResourceNotFoundError:
            return
    raise RuntimeError(f"an index document kept changing; gave up after {_RETRIES} tries")


async def drop_values(container: Any, tag: str) -> None:
    """Remove ``tag``'s keys from every document that has them, across studies. Pages of
    ``TOP`` until none is left (each page's documents stop matching once updated), rather
    than one long query whose continuation would run over documents being changed."""
    if not _TAG_PATH.fullmatch(tag):  # inlined as a property name
        raise ValueError(f"not a tag path: {tag!r}")
    gate = asyncio.Semaphore(_PARALLEL)

    async def drop(item: str, study_uid: str) -> None:
        async with gate:
            await update_document(container, item, study_uid, _Change({}, {}, {}, {tag}).apply)

    sql = (f'SELECT TOP {_DROP_PAGE} c.id, c.study_uid FROM c'
           f' WHERE IS_DEFINED(c.m["{tag}"]) OR IS_DEFINED(c.w["{tag}"])')
    while True:
        rows = [row async for row in container.query_items(sql)]
        if not rows:
            return
        await asyncio.gather(*(drop(row["id"], row["study_uid"]) for row in rows))
