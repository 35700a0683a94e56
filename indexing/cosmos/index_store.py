"""The cloud index: :class:`~indexing.port.IndexStore` on Cosmos DB (NoSQL API).

Documents and partitioning: :mod:`indexing.cosmos.schema`; searching:
:mod:`indexing.cosmos.search`.

Adding an instance: the study and series documents are read, then the instance document
is created; its id is made of the UIDs, so a second add of the same instance fails
atomically (409) and is reported as already indexed. The first instance of a series is
one transactional batch in the study's partition: the series document and the study's
(created, or replaced under its ETag) already counting it, and the instance document; a
batch that lost a race (the series was made or the study changed meanwhile) writes
nothing, and the add goes the way below (missing documents created one by one, a lost
creation race reading the winner's, the new series recounted before the add returns).

Summaries (counts, Modalities and SOP Classes in Study) are *recomputed* from the
study's own partition and written with an ETag precondition, retried on 412 (the one
increment, the first-of-series batch's, is written under the ETag of the study it read,
atomically with the documents it counts). Each writer recomputes after its own instance
exists, and a write based on a stale read fails its precondition, so the last write to
succeed counted every instance then present: parallel adds to one study cannot lose an
update. Recomputing is
idempotent, so an add interrupted before the summaries were written is finished by
running it again (the indexer's repair and the blob event do): the repeated add finds
the instance and refreshes the summaries anyway. The first instance of a series is
counted before the add returns (so a new study or series is found at once, in every
process); later ones are recounted in batches by :mod:`indexing.cosmos.summary_refresher`,
which the store settles before every search.

The record and its feed entry (no transaction spans two containers): the instance
document is created carrying its create entry
(``entry``, kept); the entry is appended to the feed after. A reader may see the record
before the entry, never the entry without the record, and a crash in between leaves a
document whose entry the feed lacks, which :meth:`reconcile_entries` finds by checking
the documents' entries against the feed, and appends. (Documents written before issue 17
carry ``pending`` instead, cleared once appended; reconciliation still handles them.)
So a stored instance costs two writes: its document and its feed entry. Deletes: a
pending tombstone first (the intent, carrying the record), then the instance documents
go, then the delete entries are appended; reconciliation finishes a tombstone whose
documents or entries are left.

limit/offset: results are ordered by ``pos``; ``offset`` is skipped by reading only the
``pos`` of the skipped documents (``TOP offset``), then the page is ``pos > last``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Sequence
from typing import Any

from azure.core import MatchConditions
from azure.cosmos.exceptions import (
    CosmosAccessConditionFailedError,
    CosmosBatchOperationError,
    CosmosHttpResponseError,
    CosmosResourceExistsError,
    CosmosResourceNotFoundError,
)

from changefeed.port import Action, ChangeEntry, State
from dicomcore.clock import utc_now
from indexing.attributes import AttributeTable, Level, standard_table
from indexing.cosmos import schema
from indexing.cosmos.database import CosmosDatabase
from indexing.cosmos.extended_tag_store import CONTAINER as EXTENDED_CONTAINER
from indexing.cosmos.extended_tag_store import CosmosExtendedTagStore
from indexing.cosmos.feed_store import CONTAINER as FEED_CONTAINER
from indexing.cosmos.feed_store import CosmosChangeFeedStore
from indexing.cosmos.reindex import ExtendedIndexing, drop_values, patch_record, with_extended_keys
from indexing.cosmos.search import CosmosQuery, compile_filter
from indexing.cosmos.summary_refresher import SummaryRefresher
from indexing.port import DicomJson, InstanceHeader, InstanceRecord, StoreCounts
from indexing.query import Match, Query
from indexing.records import (
    change_entry,
    header_of,
    instance_order,
    record_from_json,
    series_modality,
    with_identity,
)
from indexing.results import compose_result
from indexing.summaries import (
    MODALITIES_IN_STUDY_TAG,
    SOP_CLASSES_IN_STUDY_TAG,
    modalities_in_study,
    recounted_sop_classes,
    with_sop_class,
)

log = logging.getLogger(__name__)


_RETRIES = 100
"""ETag retries before giving up; each retry means another writer made progress."""

_RECONCILE_PAGE = 100
"""Instance documents whose entries reconciliation looks up in the feed with one query."""

# What queries return: a query is charged by the size of its results (about 1 RU per KB),
# so each asks only for the fields its caller reads (docs/performance.md, "Cloud cost").
_LISTED = "c.id, c.study_uid, c.series_uid, c.sop_uid, c.series_pos, c.instance_number, c.record"
"""An instance listing (records, their order, what a removal deletes): not the attributes
and match keys, which repeat most of the record."""
_RESULT = ("c.id, c.type, c.study_uid, c.series_uid, c.pos, c.attrs, c.instance_count, c.series_count,"
           " c.modalities, c.sop_classes")
"""A search result: its attributes and summaries, not its record and match keys."""


class CosmosIndexStore:
    """The index in container ``index`` of the given database."""

    def __init__(self, database: CosmosDatabase, table: AttributeTable | None = None,
                 feed: CosmosChangeFeedStore | None = None) -> None:
        self._database = database
        self._table = table or standard_table()
        self._computed = frozenset(entry.tag for entry in self._table.entries if entry.computed)
        self._feed = feed or CosmosChangeFeedStore(database)
        """Where the entries of the records this store writes go (the same database)."""
        self._refreshers: dict[asyncio.AbstractEventLoop, SummaryRefresher] = {}
        """Batched summary recounts, one per event loop (its task belongs to that loop)."""
        self._extended = ExtendedIndexing(CosmosExtendedTagStore(database), self._table)
        """Extended query tags: indexed with new documents, checked after each add (reindex.py)."""

    @classmethod
    def connect(cls, endpoint: str, key: str, database: str, table: AttributeTable | None = None) -> CosmosIndexStore:
        return cls(CosmosDatabase(endpoint, key, database, [schema.CONTAINER, FEED_CONTAINER, EXTENDED_CONTAINER]),
                   table)

    async def _container(self) -> Any:
        return await self._database.container(schema.CONTAINER.name)

    async def close(self) -> None:
        refresher = self._refreshers.pop(asyncio.get_running_loop(), None)
        if refresher is not None:
            await refresher.close()
        await self._database.close()

    def _refresher(self) -> SummaryRefresher:
        loop = asyncio.get_running_loop()
        refresher = self._refreshers.get(loop)
        if refresher is None:
            refresher = self._refreshers[loop] = SummaryRefresher(self._recount)
        return refresher

    async def _settle(self) -> None:
        """Summaries recounted for every add this process made (read your own writes)."""
        refresher = self._refreshers.get(asyncio.get_running_loop())
        if refresher is not None:
            await refresher.settle()

    async def counts(self) -> StoreCounts:
        container = await self._container()
        studies, series, instances = await asyncio.gather(
            *(_count_documents(container, kind) for kind in ("study", "series", "instance")))
        return StoreCounts(studies=studies, series=series, instances=instances)

    async def add_instances(self, records: list[InstanceRecord]) -> list[bool]:
        # One by one: a Cosmos transactional batch holds one partition (a study), and each
        # add is its own unit already; a failure leaves the earlier ones added, which the
        # import's retry of the chunk counts as skipped.
        return [await self.add_instance(record) for record in records]

    # -- adding -------------------------------------------------------------------------

    async def add_instance(self, record: InstanceRecord, *, fresh: bool = True) -> bool:
        container = await self._container()
        tombstone = schema.tombstone_id(record.series_uid, record.sop_uid)
        if await _read(container, tombstone, record.study_uid) is not None:
            if not fresh:
                return False  # deleted: a late event or a repair must not bring it back
            with contextlib.suppress(CosmosResourceNotFoundError):
                await container.delete_item(tombstone, partition_key=record.study_uid)
        added = await self._add(container, record)
        if not fresh and added and await _read(container, tombstone, record.study_uid) is not None:
            # A delete began while this repair was adding: the delete may have listed the
            # instances before this document existed, so this add undoes itself.
            await self._remove_documents(container, record.study_uid,
                                         [await _read(container, schema.instance_id(record.series_uid,
                                                                                    record.sop_uid), record.study_uid)])
            await self._feed.append(change_entry(record, Action.DELETE))  # its create entry is out
            return False
        return added

    async def _add(self, container: Any, record: InstanceRecord) -> bool:
        dataset = with_identity(record)
        pos = f"{utc_now()}|"
        extended = self._extended
        used, table, tags = extended.tags, extended.combined, extended.table  # one consistent snapshot
        study, series = await self._study_and_series(container, record)
        entry = change_entry(record, Action.CREATE)
        if series is None:
            if await self._add_first_of_series(container, record, dataset, pos, study, entry, table, tags):
                await extended.after_add(container, record, used)  # after the write: see reindex.py
                await self._feed.append(entry)
                return True
            # The batch lost a race (a concurrent add made the series, or changed or removed
            # the study): read them again and add one document at a time, as below.
            study, series = await self._study_and_series(container, record)
        if study is None:
            study = await _create_or_read(container, with_extended_keys(
                schema.study_document(table, record, dataset, pos + record.study_uid), tags, Level.STUDY, dataset))
        if series is None:
            series = await _create_or_read(container, with_extended_keys(
                schema.series_document(table, record, dataset, pos + record.series_uid, study),
                tags, Level.SERIES, dataset))
        document = with_extended_keys(
            schema.instance_document(table, record, dataset, pos + record.sop_uid, series, entry),
            tags, Level.INSTANCE, dataset)
        try:
            await container.create_item(document)
            added = True
        except CosmosResourceExistsError:
            added = False
        await extended.after_add(container, record, used)  # after the write: see reindex.py
        if not added:
            # Already indexed: finish what that add may have left undone (its entry, its summaries).
            await self._finish_entry(container, await _read(container, document["id"], record.study_uid) or {})
            await self._recount(record.study_uid, frozenset({record.series_uid}), (record.sop_class_uid,))
            return False
        await self._feed.append(entry)
        if series["instance_count"] == 0:
            # The series' first instance: counted before STOW answers, so a new study or
            # series is found at once at every level, in every process.
            await self._refresh_series(container, record.study_uid, record.series_uid, series)
            await self._refresh_study(container, record.study_uid, study, add_sop_classes=(record.sop_class_uid,))
        else:
            self._refresher().touch(record.study_uid, record.series_uid, record.sop_class_uid)
        return True

    @staticmethod
    async def _study_and_series(container: Any, record: InstanceRecord
                                ) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
        study, series = await asyncio.gather(
            _read(container, schema.STUDY_ID, record.study_uid),
            _read(container, schema.series_id(record.series_uid), record.study_uid),
        )
        return study, series

    async def _add_first_of_series(self, container: Any, record: InstanceRecord, dataset: DicomJson, pos: str,
                                   study: dict[str, Any] | None, entry: ChangeEntry,
                                   table: AttributeTable, tags: AttributeTable) -> bool:
        """The first instance of a series: its series document, its study's (created, or
        replaced under its ETag) and its own, in one transactional batch in the study's
        partition, the study and series already counting it. So a new study or series is
        found at once, counted, in every process, for one write call and no query (issue
        17; before, 3 creates, 2 replaces and 3 COUNT queries). ``False`` when the batch
        lost a race (the series was made, or the study changed, meanwhile): nothing was
        written (the batch is atomic) and the caller adds the usual way."""
        if study is None:
            counted = self._counted_study(with_extended_keys(
                schema.study_document(table, record, dataset, pos + record.study_uid), tags, Level.STUDY, dataset),
                dataset, record.sop_class_uid)
            operations: list[tuple[Any, ...]] = [("create", (counted,))]
        else:
            counted = self._counted_study(study, dataset, record.sop_class_uid)
            operations = [("replace", (study["id"], counted), {"if_match_etag": study["_etag"]})]
        series = with_extended_keys(schema.series_document(table, record, dataset, pos + record.series_uid, counted),
                                    tags, Level.SERIES, dataset)
        series["instance_count"] = 1
        document = with_extended_keys(
            schema.instance_document(table, record, dataset, pos + record.sop_uid, series, entry),
            tags, Level.INSTANCE, dataset)
        operations += [("create", (series,)), ("create", (document,))]
        try:
            await container.execute_item_batch(operations, partition_key=record.study_uid)
        except (CosmosBatchOperationError, CosmosResourceExistsError, CosmosAccessConditionFailedError,
                CosmosResourceNotFoundError):
            return False  # Azure answers a failed batch with the failing operation's status
        return True

    def _counted_study(self, study: dict[str, Any], dataset: DicomJson, sop_class_uid: str) -> dict[str, Any]:
        """``study`` with one more series (of the dataset's modality) and one more instance.
        Exact when ``study`` was; a stale count stays stale only until the recount that
        whoever made it stale has pending (summary_refresher.py), which then counts this
        instance too (it is written in the same batch)."""
        updated = dict(study)
        updated["instance_count"] = study["instance_count"] + 1
        updated["series_count"] = study["series_count"] + 1
        updated["modalities"] = modalities_in_study([*study["modalities"], series_modality(dataset)])
        updated["sop_classes"] = with_sop_class(study["sop_classes"], sop_class_uid)
        updated["m"] = self._computed_keys(updated)
        return updated

    async def _recount(self, study_uid: str, series_uids: frozenset[str], sop_classes: tuple[str, ...]) -> None:
        """Recount the summaries of these series, then of their study."""
        container = await self._container()
        await asyncio.gather(*(self._refresh_series(container, study_uid, uid) for uid in sorted(series_uids)))
        await self._refresh_study(container, study_uid, add_sop_classes=sop_classes)

    async def _finish_entry(self, container: Any, document: dict[str, Any]) -> None:
        """Append the document's create entry unless the feed has it. A document of the
        older protocol (``pending``) has it cleared afterwards."""
        if document.get("pending"):
            await self._commit_pending(container, document)
            return
        entry = document.get("entry")
        if entry is not None and not await self._feed.contains(entry["entry_id"]):
            await self._feed.append(_change_entry(entry))

    async def _refresh_series(
        self, container: Any, study_uid: str, series_uid: str, document: dict[str, Any] | None = None
    ) -> None:
        """Recount the series' instances; an emptied series document is removed."""
        for _ in range(_RETRIES):
            if document is None:
                document = await _read(container, schema.series_id(series_uid), study_uid)
                if document is None:
                    return
            count = await _scalar(
                container, study_uid,
                "SELECT VALUE COUNT(1) FROM c WHERE c.study_uid = @study AND c.type = 'instance'"
                " AND c.series_uid = @series", {"@series": series_uid})
            try:
                if count == 0:
                    await _delete_if_unchanged(container, document)
                elif count != document["instance_count"]:
                    await _replace_if_unchanged(container, {**document, "instance_count": count})
                return
            except CosmosAccessConditionFailedError:
                document = None  # changed meanwhile: read it again
        raise RuntimeError(f"series summary of {series_uid} kept changing; gave up after {_RETRIES} tries")

    async def _refresh_study(
        self, container: Any, study_uid: str, document: dict[str, Any] | None = None, *,
        add_sop_classes: Sequence[str] = (), recount_sop_classes: bool = False,
    ) -> None:
        """Recompute the study's counts, Modalities and SOP Classes in Study."""
        for _ in range(_RETRIES):
            if document is None:
                document = await _read(container, schema.STUDY_ID, study_uid)
                if document is None:
                    return
            count, series, classes = await asyncio.gather(
                _scalar(container, study_uid,
                        "SELECT VALUE COUNT(1) FROM c WHERE c.study_uid = @study AND c.type = 'instance'", {}),
                _query(container, study_uid,
                       "SELECT c.modality FROM c WHERE c.study_uid = @study AND c.type = 'series'"
                       " AND c.instance_count > 0", {}),
                self._sop_classes(container, study_uid) if recount_sop_classes else _none(),
            )
            updated = dict(document)
            updated["instance_count"] = count
            updated["series_count"] = len(series)
            updated["modalities"] = modalities_in_study(row.get("modality") for row in series)
            if classes is not None:
                updated["sop_classes"] = classes
            else:
                for sop_class in add_sop_classes:
                    updated["sop_classes"] = with_sop_class(updated["sop_classes"], sop_class)
            updated["m"] = self._computed_keys(updated)
            try:
                if count == 0:
                    await _delete_if_unchanged(container, document)
                elif any(updated[key] != document.get(key) for key in
                         ("instance_count", "series_count", "modalities", "sop_classes", "m")):
                    await _replace_if_unchanged(container, updated)
                return
            except CosmosAccessConditionFailedError:
                document = None
        raise RuntimeError(f"study summary of {study_uid} kept changing; gave up after {_RETRIES} tries")

    async def _sop_classes(self, container: Any, study_uid: str) -> list[str]:
        rows = await _query(
            container, study_uid,
            "SELECT VALUE c.sop_class_uid FROM c WHERE c.study_uid = @study AND c.type = 'instance'", {})
        return recounted_sop_classes(rows)

    def _computed_keys(self, study: dict[str, Any]) -> dict[str, list[str]]:
        """The study's match keys with the searchable computed attributes brought up to date."""
        keys = schema.header_keys(self._table, study["m"])
        for tag, values in ((MODALITIES_IN_STUDY_TAG, study["modalities"]),
                            (SOP_CLASSES_IN_STUDY_TAG, study["sop_classes"])):
            if values and any(entry.matchable for entry in self._table.by_tag(tag)):
                keys[tag] = list(values)
        return keys

    # -- reading records ----------------------------------------------------------------

    async def get_instance(self, study_uid: str, series_uid: str, sop_uid: str) -> InstanceRecord | None:
        document = await _read(await self._container(), schema.instance_id(series_uid, sop_uid), study_uid)
        return _record(document) if document is not None else None

    async def get_instance_by_key(self, instance_key: str) -> InstanceRecord | None:
        container = await self._container()
        items = container.query_items(  # across studies: the key does not name its study
            # Only the record: a query is charged by the size of what it returns, and the
            # document's attributes and match keys would double it (docs/performance.md).
            "SELECT VALUE c.record FROM c WHERE c.type = 'instance' AND c.instance_key = @key",
            parameters=[{"name": "@key", "value": instance_key}],
        )
        async for record in items:
            return record_from_json(record)
        return None

    async def list_instances(
        self, study_uid: str, series_uid: str | None = None, sop_uid: str | None = None, *,
        attributes: bool = True,
    ) -> list[InstanceRecord]:
        records = [_record(document) for document in await self._instances(study_uid, series_uid, sop_uid)]
        if not attributes:  # the SDK parsed them already: only left out, for the same answer as SQLite
            for record in records:
                record.attributes = {}
        return records

    async def list_headers(
        self, study_uid: str, series_uid: str | None = None, sop_uid: str | None = None
    ) -> list[InstanceHeader]:
        # The SDK hands documents over parsed: the header is serialized once, here.
        return [InstanceHeader(document["record"]["instance_key"], document["record"]["incarnation"],
                               json.dumps(header_of(document["record"]["attributes"]), separators=(",", ":"),
                                          ensure_ascii=False))
                for document in await self._instances(study_uid, series_uid, sop_uid)]

    async def _instances(
        self, study_uid: str, series_uid: str | None, sop_uid: str | None
    ) -> list[dict[str, Any]]:
        if series_uid is not None and sop_uid is not None:  # one instance: a point read
            document = await _read(await self._container(), schema.instance_id(series_uid, sop_uid), study_uid)
            return [document] if document is not None else []
        sql = f"SELECT {_LISTED} FROM c WHERE c.study_uid = @study AND c.type = 'instance'"
        parameters: dict[str, Any] = {}
        if series_uid is not None:
            sql += " AND c.series_uid = @series"
            parameters["@series"] = series_uid
        if sop_uid is not None:
            sql += " AND c.sop_uid = @sop"
            parameters["@sop"] = sop_uid
        documents = await _query(await self._container(), study_uid, sql, parameters)
        # (series, instance number, SOP UID), series in the order they were indexed.
        documents.sort(key=lambda d: instance_order(d["series_pos"], d["instance_number"], d["sop_uid"]))
        return documents

    # -- removing -----------------------------------------------------------------------

    async def remove_instances(
        self, study_uid: str, series_uid: str | None = None, sop_uid: str | None = None, *, owner: str = ""
    ) -> list[InstanceRecord]:
        container = await self._container()
        documents = await self._instances(study_uid, series_uid, sop_uid)
        if not documents:
            return []
        now = time.time()
        # The intent first: from here on no repair indexes these instances again.
        await asyncio.gather(*(container.upsert_item(schema.tombstone_document(_record(document), owner, now))
                               for document in documents))
        await self._remove_documents(container, study_uid, documents)
        records = [_record(document) for document in documents]
        for record in records:
            await self._feed.append(change_entry(record, Action.DELETE))
        return records

    async def _remove_documents(self, container: Any, study_uid: str,
                                documents: Sequence[dict[str, Any] | None]) -> None:
        present = [document for document in documents if document is not None]

        async def remove(document: dict[str, Any]) -> None:
            with contextlib.suppress(CosmosResourceNotFoundError):  # a concurrent delete was first
                await container.delete_item(document["id"], partition_key=study_uid)

        await asyncio.gather(*(remove(document) for document in present))
        for affected in sorted({document["series_uid"] for document in present}):
            await self._refresh_series(container, study_uid, affected)
        await self._refresh_study(container, study_uid, recount_sop_classes=True)

    # -- tombstones and reconciliation --------------------------------------------------

    async def _tombstones(self, sql: str, parameters: dict[str, Any], study_uid: str | None = None
                          ) -> list[dict[str, Any]]:
        """Tombstones matching ``sql``; within one study's partition when ``study_uid`` is given
        (a cross-partition query costs RUs in every partition: docs/performance.md)."""
        container = await self._container()
        options: dict[str, Any] = {"partition_key": study_uid} if study_uid is not None else {}
        items = container.query_items(
            sql, parameters=[{"name": name, "value": value} for name, value in parameters.items()], **options)
        return [item async for item in items]

    async def pending_deletes(
        self, study_uid: str | None = None, series_uid: str | None = None, sop_uid: str | None = None
    ) -> list[InstanceRecord]:
        sql = "SELECT * FROM c WHERE c.type = 'tombstone' AND c.state = 'pending'"
        parameters: dict[str, Any] = {}
        for field, value in (("study_uid", study_uid), ("series_uid", series_uid), ("sop_uid", sop_uid)):
            if value is not None:
                sql += f" AND c.{field} = @{field}"
                parameters[f"@{field}"] = value
        documents = await self._tombstones(sql, parameters, study_uid)
        return sorted((_record(document) for document in documents), key=lambda record: record.instance_key)

    async def _tombstone_of(self, record: InstanceRecord) -> dict[str, Any] | None:
        """The record's tombstone: a point read in its study's partition (1 RU)."""
        return await _read(await self._container(), schema.tombstone_id(record.series_uid, record.sop_uid),
                           record.study_uid)

    async def claim_delete(self, record: InstanceRecord, owner: str, lease_seconds: float) -> bool:
        document = await self._tombstone_of(record)
        now = time.time()
        if document is None or document["state"] != "pending":
            return False
        if document["owner"] != owner and document["claimed_at"] >= now - lease_seconds:
            return False
        try:
            await _replace_if_unchanged(await self._container(), {**document, "owner": owner, "claimed_at": now})
        except (CosmosAccessConditionFailedError, CosmosResourceNotFoundError):
            return False  # another claimant (or a fresh STOW) was first
        return True

    async def finish_delete(self, record: InstanceRecord) -> None:
        with contextlib.suppress(CosmosResourceNotFoundError):  # a fresh STOW removed it meanwhile
            await (await self._container()).patch_item(
                schema.tombstone_id(record.series_uid, record.sop_uid), partition_key=record.study_uid,
                patch_operations=[{"op": "set", "path": "/state", "value": "done"}])

    async def is_deleted(self, instance_key: str) -> bool:
        # Whether one exists, not the tombstone itself (its record): a query's charge
        # grows with what it returns.
        rows = await self._tombstones("SELECT TOP 1 VALUE c.id FROM c WHERE c.type = 'tombstone'"
                                      " AND c.instance_key = @key", {"@key": instance_key})
        return bool(rows)

    async def records_after(self, instance_key: str, limit: int) -> list[InstanceRecord]:
        rows = await self._tombstones(
            f"SELECT TOP {int(limit)} VALUE c.record FROM c WHERE c.type = 'instance' AND c.instance_key > @key"
            " ORDER BY c.instance_key", {"@key": instance_key})
        return [record_from_json(row) for row in rows]

    async def reindex(self, records: list[InstanceRecord], table: AttributeTable) -> None:
        """Add the match keys of ``table``'s attributes (an extended tag's reindex) to the
        records' study, series and instance documents; keys already present are kept. The
        values also go into the documents' returnable attributes where missing, so results
        carry them from the index (as on SQLite; docs/extended-query-tags.md)."""
        await patch_record(await self._container(), records, table, attributes=True)

    async def drop_values(self, tag: str) -> None:
        """Remove every match key of ``tag`` (a deleted extended tag) from every document."""
        await drop_values(await self._container(), tag)

    async def set_digest(self, instance_key: str, sha256: str) -> None:
        record = await self.get_instance_by_key(instance_key)
        if record is not None:
            with contextlib.suppress(CosmosResourceNotFoundError):
                await (await self._container()).patch_item(
                    schema.instance_id(record.series_uid, record.sop_uid), partition_key=record.study_uid,
                    patch_operations=[{"op": "set", "path": "/record/sha256", "value": sha256}])

    async def reconcile_entries(self, *, repair: bool) -> int:
        """What a crash left half done: instance documents whose create entry the feed
        lacks, and pending tombstones whose instance document or delete entry is left.
        With ``repair``, every study's summaries are recounted too (a crash loses the
        batched recounts not yet run: :mod:`indexing.cosmos.summary_refresher`)."""
        container = await self._container()
        count = await self._reconcile_creates(container, repair=repair)
        for record in await self.pending_deletes():
            left = await _read(container, schema.instance_id(record.series_uid, record.sop_uid), record.study_uid)
            entry = change_entry(record, Action.DELETE)
            stale = left is not None and left["record"]["incarnation"] == record.incarnation
            if stale or not await self._feed.contains(entry.entry_id):
                count += 1
                if repair and stale:
                    await self._remove_documents(container, record.study_uid, [left])
                if repair:
                    await self._feed.append(entry)
        if repair:
            await self._recount_every_study(container)
        return count

    async def _reconcile_creates(self, container: Any, *, repair: bool) -> int:
        """Walk every instance document (a cross-partition walk: this is ``verify``), a page
        at a time, and look its entries up in the feed with one query per page."""
        count = 0
        page: list[dict[str, Any]] = []
        items = container.query_items(
            "SELECT c.id, c.study_uid, c.series_uid, c.sop_class_uid, c.pos, c.entry, c.pending FROM c"
            " WHERE c.type = 'instance'")
        async for document in items:
            page.append(document)
            if len(page) == _RECONCILE_PAGE:
                count += await self._reconcile_page(container, page, repair=repair)
                page = []
        if page:
            count += await self._reconcile_page(container, page, repair=repair)
        return count

    async def _reconcile_page(self, container: Any, page: list[dict[str, Any]], *, repair: bool) -> int:
        entry_ids = {doc["id"]: (doc.get("entry") or doc.get("pending") or {}).get("entry_id") for doc in page}
        present = await self._feed.existing([entry_id for entry_id in entry_ids.values() if entry_id])
        damaged = sorted((doc for doc in page if doc.get("pending") or (
            entry_ids[doc["id"]] is not None and entry_ids[doc["id"]] not in present)), key=lambda doc: doc["pos"])
        for document in damaged if repair else []:
            if document.get("pending"):  # the older protocol: append (idempotent), then clear it
                await self._commit_pending(container, document)
            else:
                await self._feed.append(_change_entry(document["entry"]))
        return len(damaged)

    async def _recount_every_study(self, container: Any) -> None:
        studies = container.query_items("SELECT VALUE c.study_uid FROM c WHERE c.type = 'study'")
        async for study_uid in studies:
            series = await _query(container, study_uid, "SELECT VALUE c.series_uid FROM c"
                                  " WHERE c.study_uid = @study AND c.type = 'series'", {})
            await asyncio.gather(*(self._refresh_series(container, study_uid, uid) for uid in series))
            await self._refresh_study(container, study_uid, recount_sop_classes=True)

    async def _commit_pending(self, container: Any, document: dict[str, Any]) -> None:
        """(Documents of the older protocol.) Append the document's create entry to the
        feed, then clear it from the document."""
        await self._feed.append(_change_entry(document["pending"]))
        try:
            await container.patch_item(document["id"], partition_key=document["study_uid"],
                                       patch_operations=[{"op": "remove", "path": "/pending"}])
        except CosmosResourceNotFoundError:
            pass  # removed meanwhile
        except CosmosHttpResponseError as exc:
            if exc.status_code != 400:  # 400: already cleared by a concurrent add of the same record
                raise

    # -- searching ----------------------------------------------------------------------

    async def search(self, query: Query) -> list[DicomJson]:
        await self._settle()
        container = await self._container()
        matches, studies = query.matches, None
        if query.level is not Level.STUDY:
            # Computed study attributes are current on the study document only: find
            # those studies first, then search within them.
            computed = tuple(match for match in matches if match.tag in self._computed)
            if computed:
                studies = await self._matching_studies(container, query, computed)
                if not studies:
                    return []
                matches = tuple(match for match in matches if match.tag not in self._computed)
        compiled = compile_filter(query, matches, studies)
        documents = await self._page(container, compiled, query.offset, query.limit)
        return await self._results(container, query.level, documents)

    async def _matching_studies(self, container: Any, query: Query, matches: tuple[Match, ...]) -> list[str]:
        study_query = Query(level=Level.STUDY, study_uid=query.study_uid, limit=0)
        compiled = compile_filter(study_query, matches)
        rows = await _run(container, compiled, f"SELECT VALUE c.study_uid FROM c WHERE {compiled.where()}")
        return rows

    async def _page(self, container: Any, compiled: CosmosQuery, offset: int, limit: int) -> list[dict[str, Any]]:
        where = compiled.where()
        if offset > 0:
            skipped = await _run(
                container, compiled,
                f"SELECT TOP {int(offset)} VALUE c.pos FROM c WHERE {where} ORDER BY c.pos")
            if len(skipped) < offset:
                return []
            where += f" AND c.pos > {compiled.parameter(skipped[-1])}"
        return await _run(container, compiled,
                          f"SELECT TOP {int(limit)} {_RESULT} FROM c WHERE {where} ORDER BY c.pos")

    async def _results(self, container: Any, level: Level, documents: list[dict[str, Any]]) -> list[DicomJson]:
        studies = await _read_many(container, {(schema.STUDY_ID, d["study_uid"]) for d in documents}
                                   if level is not Level.STUDY else set())
        series = await _read_many(container, {(schema.series_id(d["series_uid"]), d["study_uid"]) for d in documents}
                                  if level is Level.INSTANCE else set())
        results = []
        study: dict[str, Any] | None
        in_series: dict[str, Any] | None
        for document in documents:
            if level is Level.STUDY:
                study, in_series = document, None
            elif level is Level.SERIES:
                study, in_series = studies.get((schema.STUDY_ID, document["study_uid"])), document
            else:
                study = studies.get((schema.STUDY_ID, document["study_uid"]))
                in_series = series.get((schema.series_id(document["series_uid"]), document["study_uid"]))
            if study is None or (level is not Level.STUDY and in_series is None):
                continue  # its study or series was removed after the page was read
            results.append(_result(level, study, in_series, document))
        return results


# -- documents ----------------------------------------------------------------------------


async def _none() -> None:
    return None


async def _read(container: Any, item: str, study_uid: str) -> dict[str, Any] | None:
    try:
        return await container.read_item(item, partition_key=study_uid)
    except CosmosResourceNotFoundError:
        return None


async def _read_many(container: Any, keys: set[tuple[str, str]]) -> dict[tuple[str, str], dict[str, Any]]:
    ordered = sorted(keys)
    found = await asyncio.gather(*(_read(container, item, study) for item, study in ordered))
    return {key: document for key, document in zip(ordered, found, strict=True) if document is not None}


async def _create_or_read(container: Any, document: dict[str, Any]) -> dict[str, Any]:
    """Create ``document``; if another writer created it first, theirs (the first wins)."""
    try:
        return await container.create_item(document)
    except CosmosResourceExistsError:
        existing = await _read(container, document["id"], document["study_uid"])
        if existing is None:  # created and removed again in between: try once more
            return await container.create_item(document)
        return existing


async def _replace_if_unchanged(container: Any, document: dict[str, Any]) -> None:
    await container.replace_item(document["id"], document, etag=document["_etag"],
                                 match_condition=MatchConditions.IfNotModified)


async def _delete_if_unchanged(container: Any, document: dict[str, Any]) -> None:
    with contextlib.suppress(CosmosResourceNotFoundError):
        await container.delete_item(document["id"], partition_key=document["study_uid"], etag=document["_etag"],
                                    match_condition=MatchConditions.IfNotModified)


async def _query(container: Any, study_uid: str, sql: str, parameters: dict[str, Any]) -> list[Any]:
    """A query within one study's partition (``@study`` is bound to it)."""
    items = container.query_items(
        sql, parameters=[{"name": name, "value": value} for name, value in {**parameters, "@study": study_uid}.items()],
        partition_key=study_uid,
    )
    return [item async for item in items]


async def _scalar(container: Any, study_uid: str, sql: str, parameters: dict[str, Any]) -> Any:
    rows = await _query(container, study_uid, sql, parameters)
    return rows[0] if rows else 0


async def _count_documents(container: Any, kind: str) -> int:
    """Documents of one type across every study's partition (one aggregate query)."""
    items = container.query_items("SELECT VALUE COUNT(1) FROM c WHERE c.type = @type",
                                  parameters=[{"name": "@type", "value": kind}])
    return sum([int(count) async for count in items])


async def _run(container: Any, compiled: CosmosQuery, sql: str) -> list[Any]:
    options: dict[str, Any] = {}
    if compiled.partition is not None:
        options["partition_key"] = compiled.partition
    items = container.query_items(
        sql, parameters=[{"name": name, "value": value} for name, value in compiled.parameters.items()], **options)
    return [item async for item in items]


def _change_entry(data: dict[str, Any]) -> ChangeEntry:
    return ChangeEntry(**{**data, "action": Action(data["action"]), "state": State(data["state"])})


def _record(document: dict[str, Any]) -> InstanceRecord:
    return record_from_json(document["record"])


def _result(level: Level, study: dict[str, Any], series: dict[str, Any] | None, document: dict[str, Any]) -> DicomJson:
    return compose_result(
        level, study["attrs"], (study["series_count"], study["instance_count"]), study["modalities"],
        study["sop_classes"],
        series=series["attrs"] if series is not None else None,
        series_instances=series["instance_count"] if series is not None else 0,
        instance=document["attrs"],
    )
