"""The cloud's cost per request (issue 17), checked where it is decided: a STOW into an
existing series makes two Cosmos writes (its document, its feed entry) and no query; the
summaries are recounted in batches, exact for the process that stored, and for the
others after one pass; reconciliation finds an entry a crash kept from the feed."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
from azure.cosmos import CosmosClient
from starlette.testclient import TestClient

from dicomcore import layout
from dicomweb.app import create_app
from dicomweb.settings import Settings
from dicomweb.storage.call_log import CALL_LOG_ENV
from dicomweb.usecases.blob_created import Outcome
from indexing.cosmos import index_store, summary_refresher
from tests.conftest import AZURE
from tests.support.builders import make_dataset, multipart_body, to_bytes

pytestmark = pytest.mark.parametrize("backend", [AZURE], indirect=True)


def _store(client: TestClient, *datasets: Any) -> None:
    body, content_type = multipart_body([to_bytes(ds) for ds in datasets])
    response = client.post("/v1/studies", content=body, headers={"Content-Type": content_type})
    assert response.status_code == 200, response.text


def _calls(log: Path, start: int) -> list[dict[str, Any]]:
    lines = log.read_text(encoding="utf-8").splitlines() if log.exists() else []
    return [json.loads(line) for line in lines[start:]]


def _lines(log: Path) -> int:
    return len(log.read_text(encoding="utf-8").splitlines()) if log.exists() else 0


def _series_count(client: TestClient, ds: Any) -> int:
    response = client.get(f"/v1/studies/{ds.StudyInstanceUID}/series")
    assert response.status_code == 200, response.text
    (series,) = response.json()
    return int(series["00201209"]["Value"][0])


def _study_count(client: TestClient, ds: Any) -> int:
    response = client.get("/v1/studies", params={"StudyInstanceUID": ds.StudyInstanceUID})
    (study,) = response.json()
    return int(study["00201208"]["Value"][0])


def test_stow_into_an_existing_series_costs_two_cosmos_writes_and_no_query(
        settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    log = tmp_path / "calls.jsonl"
    monkeypatch.setenv(CALL_LOG_ENV, str(log))
    monkeypatch.setattr(summary_refresher, "DELAY_SECONDS", 30.0)  # the batch recount stays out of the window
    first = make_dataset()
    more = [make_dataset(study=first.StudyInstanceUID, series=first.SeriesInstanceUID, instance_number=n)
            for n in (2, 3, 4)]
    with TestClient(create_app(settings), base_url="http://testserver") as client:
        _store(client, first)  # a new study and series: counted before STOW answers
        time.sleep(0.3)  # background work of that STOW (the publisher) settles
        start = _lines(log)
        _store(client, *more)
        cosmos = [call for call in _calls(log, start) if call["service"] == "cosmos"]
        writes = [call["container"] for call in cosmos if call["kind"] in ("write", "delete")]
        assert sorted(writes) == ["changefeed"] * 3 + ["index"] * 3, cosmos
        assert [call for call in cosmos if call["kind"] in ("query", "list")] == []
        # Another process (an app of its own on the same stores) sees the counts after one
        # pass of the batch recount; this process settles it before it searches.
        with TestClient(create_app(settings), base_url="http://testserver") as other:
            assert _series_count(client, first) == 4 and _study_count(client, first) == 4
            assert _series_count(other, first) == 4 and _study_count(other, first) == 4


def _cosmos_calls_of_one_stow(client: TestClient, log: Path, *datasets: Any) -> list[dict[str, Any]]:
    time.sleep(0.3)  # background work of the previous STOW (the publisher) settles
    start = _lines(log)
    _store(client, *datasets)
    time.sleep(0.3)  # and anything this one leaves running is charged to it
    return [call for call in _calls(log, start) if call["service"] == "cosmos"]


def test_stow_of_a_new_study_or_series_costs_two_cosmos_writes_and_no_query(
        settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    log = tmp_path / "calls.jsonl"
    monkeypatch.setenv(CALL_LOG_ENV, str(log))
    first = make_dataset(modality="CT")
    other_series = make_dataset(study=first.StudyInstanceUID, modality="MR", series_number=2)
    with TestClient(create_app(settings), base_url="http://testserver") as client, \
            TestClient(create_app(settings), base_url="http://testserver") as other:
        _store(client, make_dataset())  # the first call of a process also creates the containers
        for ds, study_write in ((first, "create"), (other_series, "replace")):
            cosmos = _cosmos_calls_of_one_stow(client, log, ds)
            writes = [call["container"] for call in cosmos if call["kind"] in ("write", "delete")]
            # One transactional batch (study, series and instance documents) and the feed entry.
            assert sorted(writes) == ["changefeed", "index"], cosmos
            (batch,) = [call for call in cosmos if call.get("op") == "batch"]
            assert [op for op, _size in batch["operations"]] == [study_write, "create", "create"]
            assert [call for call in cosmos if call["kind"] in ("query", "list")] == []
        # Counted before STOW answered: another process finds both at once, with the
        # study's summaries (no batch recount was left pending to bring them).
        response = other.get("/v1/studies", params={"StudyInstanceUID": first.StudyInstanceUID})
        (study,) = response.json()
        assert study["00201206"]["Value"] == [2] and study["00201208"]["Value"] == [2]
        assert study["00080061"]["Value"] == ["CT", "MR"]
        found = other.get("/v1/studies", params={"ModalitiesInStudy": "MR", "PatientID": "PAT-1"}).json()
        assert first.StudyInstanceUID in [s["0020000D"]["Value"][0] for s in found]
        series = other.get(f"/v1/studies/{first.StudyInstanceUID}/series").json()
        assert sorted(int(s["00201209"]["Value"][0]) for s in series) == [1, 1]


def test_a_first_instance_whose_batch_lost_a_race_is_added_the_older_way(
        settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    log = tmp_path / "calls.jsonl"
    monkeypatch.setenv(CALL_LOG_ENV, str(log))
    first = make_dataset(modality="CT")
    other_series = make_dataset(study=first.StudyInstanceUID, modality="MR", series_number=2)
    real_read = index_store._read
    stale: list[bool] = []

    async def stale_study(container: Any, item: str, study_uid: str) -> dict[str, Any] | None:
        document = await real_read(container, item, study_uid)
        if item == "study" and document is not None and not stale:  # as if another add changed it meanwhile
            stale.append(True)
            return {**document, "_etag": '"changed-meanwhile"'}
        return document

    with TestClient(create_app(settings), base_url="http://testserver") as client, \
            TestClient(create_app(settings), base_url="http://testserver") as other:
        _store(client, first)
        monkeypatch.setattr(index_store, "_read", stale_study)
        cosmos = _cosmos_calls_of_one_stow(client, log, other_series)  # the batch's study replace fails its ETag
        monkeypatch.setattr(index_store, "_read", real_read)
        assert stale, "the add did not read its study"
        index_writes = [call.get("op") for call in cosmos if call["kind"] == "write" and call["container"] == "index"]
        assert index_writes[0] == "batch" and index_writes[1:3] == ["create", "create"], index_writes
        (study,) = other.get("/v1/studies", params={"StudyInstanceUID": first.StudyInstanceUID}).json()
        assert study["00201206"]["Value"] == [2] and study["00201208"]["Value"] == [2]
        assert study["00080061"]["Value"] == ["CT", "MR"]


def test_the_event_of_an_indexed_instance_costs_one_query_returning_the_record_only(
        settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    log = tmp_path / "calls.jsonl"
    monkeypatch.setenv(CALL_LOG_ENV, str(log))
    ds = make_dataset()
    key = layout.instance_key(ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID)
    event = {"eventType": "Microsoft.Storage.BlobCreated", "eventTime": "2026-01-01T00:00:00Z",
             "subject": f"/blobServices/default/containers/{settings.blob_container}/blobs/{layout.file_name(key)}"}
    with TestClient(create_app(settings), base_url="http://testserver") as client:
        _store(client, ds)
        time.sleep(0.3)
        start = _lines(log)
        services = client.app.state.services  # type: ignore[attr-defined]
        outcome = client.portal.call(lambda: services.blob_created.handle_event(event))  # type: ignore[union-attr]
        assert outcome is Outcome.ALREADY_INDEXED
        cosmos = [call for call in _calls(log, start) if call["service"] == "cosmos"]
        (query,) = cosmos  # no write, no other call
        assert query["kind"] == "query" and query["cross_partition"]
        # A query is charged by what it returns: the record, not the whole document.
        index = CosmosClient(settings.cosmos_endpoint, settings.cosmos_key, connection_verify=False) \
            .get_database_client(settings.cosmos_database).get_container_client("index")
        document = index.read_item(f"instance:{ds.SeriesInstanceUID}:{ds.SOPInstanceUID}",
                                   partition_key=ds.StudyInstanceUID)
        assert 0 < query["received"] < len(json.dumps(document)) * 0.75


def test_counts_reach_other_processes_without_their_searching_the_writer(settings: Settings) -> None:
    first = make_dataset()
    second = make_dataset(study=first.StudyInstanceUID, series=first.SeriesInstanceUID, instance_number=2)
    with TestClient(create_app(settings), base_url="http://testserver") as writer, \
            TestClient(create_app(settings), base_url="http://testserver") as reader:
        _store(writer, first)
        assert _series_count(reader, first) == 1  # the first instance of a series: at once
        _store(writer, second)
        deadline = time.monotonic() + 10 * summary_refresher.DELAY_SECONDS + 5
        while _series_count(reader, first) != 2:
            assert time.monotonic() < deadline, "the batch recount never reached the other process"
            time.sleep(0.05)
        assert _study_count(reader, first) == 2


def test_verify_appends_an_entry_a_crash_kept_from_the_feed_and_recounts_summaries(settings: Settings) -> None:
    ds = make_dataset()
    with TestClient(create_app(settings), base_url="http://testserver") as client:
        _store(client, ds)
        database = CosmosClient(settings.cosmos_endpoint, settings.cosmos_key, connection_verify=False) \
            .get_database_client(settings.cosmos_database)
        feed = database.get_container_client("changefeed")
        (entry,) = feed.query_items("SELECT * FROM c WHERE c.sop_uid = @sop",
                                    parameters=[{"name": "@sop", "value": ds.SOPInstanceUID}],
                                    enable_cross_partition_query=True)
        feed.delete_item(entry, partition_key=entry["feed"])  # the crash came between document and feed
        index = database.get_container_client("index")
        study = index.read_item("study", partition_key=ds.StudyInstanceUID)
        index.upsert_item({**study, "instance_count": 7})  # batch recounts the crash lost
        series = index.read_item(f"series:{ds.SeriesInstanceUID}", partition_key=ds.StudyInstanceUID)
        index.upsert_item({**series, "instance_count": 5})
        services = client.app.state.services  # type: ignore[attr-defined]
        found = client.portal.call(lambda: services.reconcile.run(repair=False, digests=False))  # type: ignore[union-attr]
        assert found.missing_entries == 1
        repaired = client.portal.call(lambda: services.reconcile.run(repair=True, digests=False))  # type: ignore[union-attr]
        assert repaired.missing_entries == 1
        again = client.portal.call(lambda: services.reconcile.run(repair=False, digests=False))  # type: ignore[union-attr]
        assert again.missing_entries == 0
        changes = client.get("/v1/changefeed", params={"includeMetadata": "false"}).json()
        assert [(e["action"], e["sopInstanceUid"]) for e in changes] == [("create", ds.SOPInstanceUID)]
        assert _study_count(client, ds) == 1 and _series_count(client, ds) == 1
