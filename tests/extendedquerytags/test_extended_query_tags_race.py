"""STOWs running while a tag is added and reindexed: no instance is missed."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

from tests.support.builders import make_dataset, multipart_body, to_bytes
from tests.support.import_area import wait_for_operation
from tests.support.servers import ServerProcess

STUDY = "1.2.826.0.1.3680043.8.498.1402"


def _stow(root: str, number: int) -> str:
    ds = make_dataset(study=STUDY, instance_number=number)
    ds.SliceThickness = "2.5"
    body, content_type = multipart_body([to_bytes(ds)])
    response = httpx.post(f"{root}/studies", content=body, headers={"Content-Type": content_type}, timeout=60)
    assert response.status_code == 200, response.text
    return str(ds.SOPInstanceUID)


def test_concurrent_stows_during_reindex_are_all_searchable(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path / "data", workers=2)  # the tag is added in one process, STOWs land in both
    try:
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
    finally:
        server.stop()
