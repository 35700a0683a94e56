"""The embedded index's WAL checkpoints run beside requests, never inside one, and the WAL
file shrinks back once a checkpoint has emptied it (docs/performance.md, "Tail latency")."""

from __future__ import annotations

import sqlite3
import threading

import pytest
from starlette.testclient import TestClient

from dicomweb.app import create_app
from dicomweb.settings import Settings
from indexing.sqlite import index_store, schema
from tests.support.builders import DICOM, make_dataset, to_bytes


def _stow(client: TestClient, count: int) -> None:
    for _ in range(count):
        response = client.post("/v1/studies", content=to_bytes(make_dataset()), headers={"Content-Type": DICOM})
        assert response.status_code == 200, response.text


def test_a_stow_does_not_wait_for_a_checkpoint(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    release, started = threading.Event(), threading.Event()
    threads: list[str] = []

    def held_checkpoint(connection: sqlite3.Connection) -> None:
        threads.append(threading.current_thread().name)
        started.set()
        release.wait(30)

    monkeypatch.setattr(index_store, "_checkpoint", held_checkpoint)
    with TestClient(create_app(settings)) as client:
        _stow(client, index_store._CHECKPOINT_EVERY)
        assert started.wait(10)
        _stow(client, 2 * index_store._CHECKPOINT_EVERY)  # answered while the checkpoint is held
        assert threads == ["wal-checkpoint"]  # one at a time: none started beside the held one
        release.set()
    assert not [thread for thread in threading.enumerate() if thread.name == "wal-checkpoint"]


def test_the_wal_file_is_cut_back_after_a_checkpoint(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(schema, "WAL_SIZE_LIMIT_BYTES", 0)
    wal = settings.data_dir / "index.sqlite-wal"
    sizes = []
    with TestClient(create_app(settings)) as client:
        for _ in range(4 * index_store._CHECKPOINT_EVERY):
            _stow(client, 1)
            sizes.append(wal.stat().st_size)
    # Without the limit SQLite reuses the file from its start and it never shrinks.
    assert min(sizes[2 * index_store._CHECKPOINT_EVERY:]) < max(sizes) / 4
