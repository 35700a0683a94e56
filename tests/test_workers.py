"""``dicomweb serve --workers 2``: both processes serve STOW (connections are dealt out in
turn, dicomweb/accept_turns.py), and afterwards the index and the change feed agree: every
stored instance once in each, the feed's sequence without gaps."""

from __future__ import annotations

import re
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

from tests.support.builders import DICOM, make_dataset, to_bytes
from tests.support.servers import ServerProcess

CLIENTS = 4
PER_CLIENT = 6


def _store(http: httpx.Client, root: str, client: int) -> list[str]:
    stored = []
    for i in range(PER_CLIENT):
        ds = make_dataset(patient_id=f"C{client}", instance_number=i)
        assert http.post(f"{root}/studies", content=to_bytes(ds), headers={"Content-Type": DICOM}).status_code == 200
        stored.append(ds.SOPInstanceUID)
    return stored


def _writes_per_process(server: ServerProcess) -> list[int]:
    """The ``index writes: N`` line each worker logs when its index closes (at shutdown)."""
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        counts = [int(m.group(1)) for line in list(server.output) if (m := re.search(r"index writes: (\d+)", line))]
        if len(counts) == 2:
            return counts
        time.sleep(0.1)
    return counts


def test_two_workers_both_store_and_the_index_and_feed_agree(tmp_path: Path) -> None:
    data = tmp_path / "data"
    server = ServerProcess(data, workers=2)
    clients = [httpx.Client(timeout=60) for _ in range(CLIENTS)]
    try:
        for http in clients:  # connected one after another: the workers take turns
            assert http.get(f"{server.root}/health").status_code == 200
        with ThreadPoolExecutor(CLIENTS) as pool:
            stored = sorted(uid for uids in pool.map(lambda c: _store(clients[c], server.root, c), range(CLIENTS))
                            for uid in uids)
    finally:
        for http in clients:
            http.close()
        server.stop()
    writes = _writes_per_process(server)
    assert len(writes) == 2 and all(n > 0 for n in writes) and sum(writes) == CLIENTS * PER_CLIENT, writes

    reader = ServerProcess(data)
    try:
        with httpx.Client(timeout=30) as http:
            indexed = sorted(i["00080018"]["Value"][0] for i in http.get(f"{reader.root}/instances").json())
            feed = http.get(f"{reader.root}/changefeed", params={"offset": 0, "limit": 100}).json()
    finally:
        reader.stop()
    assert indexed == stored
    assert [entry["sequence"] for entry in feed] == list(range(1, len(stored) + 1))
    assert sorted(entry["sopInstanceUid"] for entry in feed) == stored
    assert {entry["action"] for entry in feed} == {"create"}
