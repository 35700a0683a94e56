"""Races on both stores: STOWs running while a tag is added and reindexed (no instance is
missed), and POSTs racing for the same tag (one wins)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from tests.support.builders import make_dataset, multipart_body, to_bytes
from tests.support.import_area import wait_for_operation
from tests.support.servers import ServerProcess

STUDY = "1.2.826.0.1.3680043.8.498.1402"
EMBEDDED, AZURE = "embedded", "azure"


@pytest.fixture(params=[EMBEDDED, AZURE])
def server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ServerProcess]:
    """Two worker processes: the tag is added in one, STOWs land in both."""
    env: dict[str, str] = {}
    if request.param == AZURE:
        azurite, cosmos = request.getfixturevalue("azurite"), request.getfixturevalue("cosmos_server")
        fresh = uuid.uuid4().hex[:16]
        env = {"DICOMWEB_BLOB_STORE": "azure", "DICOMWEB_BLOB_CONNECTION_STRING": azurite.connection_string,
               "DICOMWEB_BLOB_CONTAINER": f"race-{fresh}", "DICOMWEB_INDEX_STORE": "cosmos",
               "DICOMWEB_COSMOS_ENDPOINT": cosmos.endpoint, "DICOMWEB_COSMOS_KEY": cosmos.key,
               "DICOMWEB_COSMOS_DATABASE": f"race-{fresh}"}
    process = ServerProcess(tmp_path / "data", workers=2, env=env)
    yield process
    process.stop()


def _stow(root: str, number: int) -> str:
    ds = make_dataset(study=STUDY, instance_number=number)
    ds.SliceThickness = "2.5"
    body, content_type = multipart_body([to_bytes(ds)])
    response = httpx.post(f"{root}/studies", content=body, headers={"Content-Type": content_type}, timeout=60)
    assert response.status_code == 200, response.text
    return str(ds.SOPInstanceUID)


def test_concurrent_stows_during_reindex_are_all_searchable(server: ServerProcess) -> None:
    stored = {_stow(server.root, number) for number in range(1, 31)}
    with ThreadPoolExecutor(4) as pool:
        during = [pool.submit(_stow, server.root, number) for number in range(31, 71)]
        started = httpx.post(f"{server.root}/extendedquerytags",
                             json=[{"path": "SliceThickness", "level": "instance"}], timeout=60)
        stored |= {future.result() for future in during}
    assert started.status_code == 202, started.text
    done = wait_for_operation(lambda url: httpx.get(url, timeout=60), started.json()["href"])
    assert done["status"] == "succeeded", done
    found = httpx.get(f"{server.root}/instances", params={"SliceThickness": "2.5", "limit": "500"}, timeout=60)
    assert found.status_code == 200, found.text
    assert {item["00080018"]["Value"][0] for item in found.json()} == stored


def test_racing_posts_for_one_tag_one_wins(server: ServerProcess) -> None:
    def post(_: int) -> httpx.Response:
        return httpx.post(f"{server.root}/extendedquerytags",
                          json=[{"path": "PatientWeight", "level": "study"}], timeout=60)

    with ThreadPoolExecutor(6) as pool:
        answers = list(pool.map(post, range(6)))
    assert sorted(answer.status_code for answer in answers) == [202] + [409] * 5, [a.text for a in answers]
    listed = httpx.get(f"{server.root}/extendedquerytags", timeout=60).json()
    assert [tag["path"] for tag in listed] == ["00101030"]
