"""kill -9 of an embedded server under STOW load, a restart and ``dicomweb verify``: every
acknowledged instance is stored byte for byte, and files, index and feed agree (the Azure
stores' crash points are in tests/test_crash_recovery.py)."""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Callable
from typing import Any

import httpx

from dicomweb.cli import main
from dicomweb.settings import Settings
from tests.support.builders import make_dataset, to_bytes
from tests.support.servers import ServerProcess
from tests.test_crash_recovery import _feed, _instance_files, _post, _until, settings, start

__all__ = ["settings", "start"]  # the fixtures, shared with the crash-point tests


def test_kill_during_stow_load_then_verify_finds_nothing_to_repair(
        start: Callable[..., ServerProcess], settings: Settings) -> None:
    server = start()
    acknowledged: list[Any] = []
    stop = threading.Event()

    def load() -> None:
        while not stop.is_set():
            ds = make_dataset()
            try:
                if _post(server.root, ds).status_code == 200:
                    acknowledged.append(ds)
            except httpx.TransportError:
                return

    workers = [threading.Thread(target=load) for _ in range(3)]
    for worker in workers:
        worker.start()
    _until(lambda: len(acknowledged) >= 10, seconds=60)
    os.kill(server.process.pid, signal.SIGKILL)
    stop.set()
    for worker in workers:
        worker.join()

    server = start()
    _until(lambda: len(_instance_files(settings)) == len(
        [e for e in _feed(server.root) if e["action"] == "create"]), seconds=30)
    server.stop()
    assert main(["verify", "--repair", "--data", str(settings.data_dir)]) in (0, 1)
    assert main(["verify", "--data", str(settings.data_dir)]) == 0  # nothing left to repair
    server = start()
    for ds in acknowledged:  # every acknowledged instance is there, byte for byte
        url = (f"{server.root}/studies/{ds.StudyInstanceUID}/series/{ds.SeriesInstanceUID}/instances/"
               f"{ds.SOPInstanceUID}")
        response = httpx.get(url, headers={"Accept": "application/dicom"}, timeout=30)
        assert response.status_code == 200 and response.content == to_bytes(ds)
    assert len(_instance_files(settings)) == len([e for e in _feed(server.root) if e["action"] == "create"])
