"""The feed's ordering guarantee under concurrent writers, threads and processes.

Several clients store and delete hundreds of instances through two server processes
(each with two workers) sharing one store, while readers tail the feed by sequence. Each
reader must end with exactly the changes made, in sequence order, none skipped.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import httpx

from tests.support.builders import DICOM, make_dataset, to_bytes
from tests.support.servers import ServerProcess

WRITERS = 6
PER_WRITER = 40


def _write(root: str, writer: int) -> list[tuple[str, str]]:
    """Store PER_WRITER instances, deleting every fourth; return (action, sop) made."""
    made = []
    with httpx.Client(timeout=60) as http:
        for i in range(PER_WRITER):
            ds = make_dataset(patient_id=f"W{writer}", instance_number=i)
            response = http.post(f"{root}/studies", content=to_bytes(ds), headers={"Content-Type": DICOM})
            assert response.status_code == 200
            made.append(("create", ds.SOPInstanceUID))
            if i % 4 == 3:
                url = (f"{root}/studies/{ds.StudyInstanceUID}/series/{ds.SeriesInstanceUID}"
                       f"/instances/{ds.SOPInstanceUID}")
                assert http.delete(url).status_code == 204
                made.append(("delete", ds.SOPInstanceUID))
    return made


def _tail(root: str, done: threading.Event, seen: list[dict]) -> None:
    after = 0
    with httpx.Client(timeout=60) as http:
        while True:
            finished = done.is_set()  # read once more after the writers stop
            page = http.get(f"{root}/changefeed", params={"offset": after, "limit": 37,
                                                          "includeMetadata": "false"}).json()
            seen.extend(page)
            if page:
                after = page[-1]["sequence"]
            elif finished:
                return


def test_readers_see_every_change_in_order(tmp_path) -> None:
    data = tmp_path / "shared"
    servers = [ServerProcess(data, workers=2), ServerProcess(data, workers=2)]
    done = threading.Event()
    readers = [[] for _ in range(3)]
    try:
        tails = [threading.Thread(target=_tail, args=(servers[i % 2].root, done, seen))
                 for i, seen in enumerate(readers)]
        for thread in tails:
            thread.start()
        with ThreadPoolExecutor(WRITERS) as pool:
            made = list(pool.map(lambda w: _write(servers[w % 2].root, w), range(WRITERS)))
        done.set()
        for thread in tails:
            thread.join(timeout=60)
    finally:
        for server in servers:
            server.stop()
    expected = sorted((action, sop) for changes in made for action, sop in changes)
    total = len(expected)
    assert total == WRITERS * (PER_WRITER + PER_WRITER // 4)
    for seen in readers:
        assert [entry["sequence"] for entry in seen] == list(range(1, total + 1))
        assert sorted((entry["action"], entry["sopInstanceUid"]) for entry in seen) == expected
        # per instance, the create comes before its delete
        position = {(e["action"], e["sopInstanceUid"]): e["sequence"] for e in seen}
        assert all(position[("create", sop)] < position[("delete", sop)]
                   for action, sop in expected if action == "delete")
