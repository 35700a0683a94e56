"""Index writers of several server processes (``--workers N``) take turns on a lock file
beside the database (``flock``), which wakes the next writer the moment a commit ends
instead of SQLite's busy handler polling with sleeps (docs/performance.md)."""

from __future__ import annotations

import fcntl
import os
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

from tests.support.builders import DICOM, make_dataset, to_bytes
from tests.support.servers import ServerProcess


def _store(root: str) -> int:
    with httpx.Client(timeout=60) as http:
        return http.post(f"{root}/studies", content=to_bytes(make_dataset()),
                         headers={"Content-Type": DICOM}).status_code


def test_a_stow_waits_while_another_process_holds_the_writer_lock(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path / "data")
    try:
        assert _store(server.root) == 200  # the index and its lock file exist now
        fd = os.open(tmp_path / "data" / "index.sqlite.writers", os.O_RDWR)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)  # this test process plays the other server process
            with ThreadPoolExecutor(1) as pool:
                pending = pool.submit(_store, server.root)
                time.sleep(1.0)
                assert not pending.done()  # its commit waits for the lock
                with httpx.Client(timeout=10) as http:  # reads are not held up
                    assert http.get(f"{server.root}/studies").status_code == 200
                fcntl.flock(fd, fcntl.LOCK_UN)
                assert pending.result(timeout=30) == 200
        finally:
            os.close(fd)
        with httpx.Client(timeout=10) as http:
            assert len(http.get(f"{server.root}/instances").json()) == 2
    finally:
        server.stop()
