"""An import survives ``kill -9``: the restarted server resumes it from its checkpoint and it
ends ``succeeded`` with every file stored, indexed and in the change feed exactly once."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
from pydicom.uid import generate_uid

from tests.support.builders import make_dataset, to_bytes
from tests.support.import_area import wait_for_operation
from tests.support.servers import ServerProcess, kill_hard

FILES = 5000
STUDY = "1.2.826.0.1.3680043.8.498.7002"


def _write_import_area(root: Path) -> None:
    template = make_dataset(study=STUDY, series=generate_uid())
    for i in range(FILES):
        template.SOPInstanceUID = template.file_meta.MediaStorageSOPInstanceUID = f"{STUDY}.{i + 1}"
        template.InstanceNumber = i + 1
        path = root / "crash" / f"{i // 500:02d}" / f"{i:05d}.dcm"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(to_bytes(template))


def _feed(root: str) -> list[dict[str, object]]:
    entries: list[dict[str, object]] = []
    while True:
        page = httpx.get(f"{root}/changefeed", params={"offset": entries[-1]["sequence"] if entries else 0,
                                                       "limit": 1000}).json()
        if not page:
            return entries
        entries += page


def test_import_resumes_after_kill_9(tmp_path: Path) -> None:
    data = tmp_path / "data"
    _write_import_area(data / "import")
    server = ServerProcess(data)
    try:
        started = httpx.post(f"{server.root}/import", json={"source": {"prefix": "crash/"}}).json()
        deadline = time.monotonic() + 60
        while httpx.get(started["href"]).json()["percentComplete"] < 20:  # some checkpoints, far from done
            assert time.monotonic() < deadline
            time.sleep(0.05)
        kill_hard(server)
    finally:
        server.stop()

    restarted = ServerProcess(data)
    try:
        operation = wait_for_operation(httpx.get, started["href"].replace(server.root, restarted.root), timeout=120)
        assert operation["status"] == "succeeded", operation
        results = operation["results"]
        assert results["imported"] + results["skipped"] == FILES and results["failed"] == 0
        study = httpx.get(f"{restarted.root}/studies", params={"StudyInstanceUID": STUDY,
                                                               "includefield": "00201208"}).json()
        assert study[0]["00201208"]["Value"] == [FILES]
        feed = _feed(restarted.root)
        assert len(feed) == FILES and all(entry["action"] == "create" for entry in feed)
        assert len({entry["sopInstanceUid"] for entry in feed}) == FILES
    finally:
        restarted.stop()
