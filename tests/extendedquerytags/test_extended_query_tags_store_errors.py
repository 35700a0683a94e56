"""Values invalid for an extended tag's VR found when an instance is stored (while the tag
is ``adding`` or ``ready``): recorded as errors, the tag disabled, each instance counted
once. Embedded store only: the Cosmos store records errors found by the reindex only
(docs/extended-query-tags.md, "Not done yet")."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest
from starlette.testclient import TestClient

from dicomweb.usecases.extended_query_tags import ReindexTags
from tests.extendedquerytags.test_extended_query_tags_http import TAGS, _add, _instance, _store
from tests.support.import_area import wait_for_operation


@pytest.fixture
def held_reindex(monkeypatch: pytest.MonkeyPatch) -> threading.Event:
    """Reindex operations wait (without blocking the server's event loop) until the test
    sets the event, so instances can be stored while a tag is ``adding``."""
    release = threading.Event()
    original = ReindexTags.run_activity

    async def held(self: ReindexTags, activity: str, input: dict[str, Any]) -> Any:
        while not release.is_set():
            await asyncio.sleep(0.02)
        return await original(self, activity, input)

    monkeypatch.setattr(ReindexTags, "run_activity", held)
    return release


def test_values_stored_while_adding_are_checked_and_counted_once(
        client: TestClient, held_reindex: threading.Event) -> None:
    started = client.post("/v1/extendedquerytags", json=[TAGS[3]])
    assert started.status_code == 202, started.text
    assert client.get("/v1/extendedquerytags/00091001").json()["status"] == "adding"
    good, bad = _instance(1, "70", "SN-A", "1.5"), _instance(2, "70", "SN-A", "2")
    bad.add_new(0x00091001, "LO", "Y" * 65)
    _store(client, good, bad)  # stored while adding: checked at once
    tag = client.get("/v1/extendedquerytags/00091001").json()
    assert tag["status"] == "adding" and tag["queryStatus"] == "disabled" and tag["errors"]["count"] == 1
    held_reindex.set()
    done = wait_for_operation(client.get, started.json()["href"])
    assert done["status"] == "succeeded", done
    assert done["resources"] == ["http://testserver/v1/extendedquerytags/00091001"]  # the tags' URIs
    tag = client.get("/v1/extendedquerytags/00091001").json()  # the reindex saw it too: still one error
    assert tag["status"] == "ready" and tag["queryStatus"] == "disabled" and tag["errors"]["count"] == 1
    errors = client.get(tag["errors"]["href"]).json()
    assert [error["sopInstanceUid"] for error in errors] == [bad.SOPInstanceUID]
    assert "longer than 64" in errors[0]["errorMessage"] and "YYY" not in errors[0]["errorMessage"]


def test_values_stored_once_ready_are_checked(client: TestClient) -> None:
    _add(client, [{"path": "AcquisitionDate", "level": "instance"}])
    ds = _instance(1, "70", "SN-A", "1.5")
    ds.AcquisitionDate = "20241341"  # no such day
    _store(client, ds)
    tag = client.get("/v1/extendedquerytags/AcquisitionDate").json()
    assert tag["queryStatus"] == "disabled" and tag["errors"]["count"] == 1
    assert "not a valid date" in client.get(tag["errors"]["href"]).json()[0]["errorMessage"]
