"""Start-up reconciliation walks the whole store only when an earlier server process died
without stopping (dicomweb/storage/run_marks.py): a clean restart of a big store costs nothing
proportional to its size, and a restart after kill -9 still repairs what the crash left."""

from __future__ import annotations

import time
from collections.abc import Callable

import httpx
import pytest

from dicomcore import layout
from dicomweb.settings import Settings
from tests.support.blob_drops import drop
from tests.support.builders import make_dataset, to_bytes
from tests.support.servers import ServerProcess, kill_hard

pytestmark = pytest.mark.both_backends

QUIET_SECONDS = 5.0
"""Longer than reconciling a handful of instances takes (its settle time is 2 s)."""


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.with_(delete_lease_seconds=0.5)  # reconciliation waits this long before it ends


@pytest.fixture
def start(start_server: Callable[..., ServerProcess]) -> Callable[..., ServerProcess]:
    return start_server


def _found(server: ServerProcess, sop_uid: str) -> bool:
    response = httpx.get(f"{server.root}/instances", params={"SOPInstanceUID": sop_uid}, timeout=30)
    assert response.status_code == 200, response.text
    return bool(response.json())


def test_reconciliation_at_start_only_after_an_unclean_stop(start: Callable[[], ServerProcess],
                                                            settings: Settings) -> None:
    server = start()
    stored = make_dataset()
    assert httpx.post(f"{server.root}/studies", content=to_bytes(stored), timeout=30,
                      headers={"Content-Type": "application/dicom"}).status_code == 200
    server.stop()
    running = settings.data_dir / "running"
    assert list(running.iterdir()) == []  # a clean stop (SIGTERM: uvicorn shuts down, then re-raises it)
    # What a crash between placing a file and indexing it leaves, made by hand after the stop.
    ds = make_dataset()
    drop(settings, layout.file_name(layout.instance_key(ds.StudyInstanceUID, ds.SeriesInstanceUID,
                                                        ds.SOPInstanceUID)), to_bytes(ds))

    server = start()  # every earlier process stopped cleanly: no walk of the store
    time.sleep(QUIET_SECONDS)
    assert not _found(server, ds.SOPInstanceUID)
    assert _found(server, stored.SOPInstanceUID)

    kill_hard(server)
    server = start()  # the killed process left its mark: the store is reconciled
    deadline = time.monotonic() + 30
    while not _found(server, ds.SOPInstanceUID):
        assert time.monotonic() < deadline, "the unindexed file was not indexed after an unclean stop"
        time.sleep(0.2)

    # Once reconciled, the dead mark is forgotten: only the running process's mark is left,
    # and a clean stop removes that one too.
    deadline = time.monotonic() + 30
    while len(list(running.iterdir())) != 1:
        assert time.monotonic() < deadline, "the dead process's mark was kept after reconciling"
        time.sleep(0.2)
    server.stop()
    assert list(running.iterdir()) == []
