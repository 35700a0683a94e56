"""kill -9 at the moments that matter, then a restart: files, index and feed agree again.

Real server processes on both backends; ``DICOMWEB_FAULT`` (dicomcore/faults.py) makes the
server die with ``os._exit(137)`` at a named point, as a kill -9 there would.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from dicomcore.faults import EXIT_CODE
from dicomweb.settings import Settings
from tests.support.blob_drops import stored_names
from tests.support.builders import make_dataset, multipart_body, to_bytes
from tests.support.servers import ServerProcess

pytestmark = pytest.mark.both_backends

DICOM_MULTIPART = 'multipart/related; type="application/dicom"'


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.with_(delete_lease_seconds=0.5)


@pytest.fixture
def start(start_server: Callable[..., ServerProcess]) -> Callable[..., ServerProcess]:
    return start_server


def _post(root: str, *datasets: Any) -> httpx.Response:
    body, content_type = multipart_body([to_bytes(ds) for ds in datasets])
    return httpx.post(f"{root}/studies", content=body, headers={"Content-Type": content_type}, timeout=60)


def _feed(root: str) -> list[dict[str, Any]]:
    response = httpx.get(f"{root}/changefeed", params={"limit": 1000, "includeMetadata": "false"}, timeout=30)
    assert response.status_code == 200
    entries: list[dict[str, Any]] = response.json()
    return entries


def _instance_files(settings: Settings) -> list[str]:
    return [name for name in stored_names(settings, "instances/") if name.endswith("/instance.dcm")]


def _died(server: ServerProcess) -> None:
    assert server.process.wait(timeout=30) == EXIT_CODE


def _until(check: Callable[[], bool], seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, "not repaired in time"
        time.sleep(0.2)


def _study(count: int) -> list[Any]:
    first = make_dataset()
    return [first] + [make_dataset(study=first.StudyInstanceUID, series=first.SeriesInstanceUID, instance_number=n)
                      for n in range(2, count + 1)]


def test_kill_after_delete_commit_is_finished_at_restart(start: Callable[..., ServerProcess],
                                                          settings: Settings) -> None:
    datasets = _study(3)
    server = start(DICOMWEB_FAULT="after-delete-commit")
    assert _post(server.root, *datasets).status_code == 200
    with pytest.raises(httpx.TransportError):
        httpx.delete(f"{server.root}/studies/{datasets[0].StudyInstanceUID}", timeout=30)
    _died(server)
    assert len(_instance_files(settings)) == 3  # the files outlived the crash

    server = start()  # the start-up reconciliation finishes the delete
    _until(lambda: not _instance_files(settings))
    deletes = [entry for entry in _feed(server.root) if entry["action"] == "delete"]
    assert sorted(entry["sopInstanceUid"] for entry in deletes) == sorted(ds.SOPInstanceUID for ds in datasets)
    assert httpx.get(f"{server.root}/instances", params={"StudyInstanceUID": datasets[0].StudyInstanceUID}
                     ).json() == []
    assert _post(server.root, datasets[0]).status_code == 200  # a re-send is stored fresh


def test_second_delete_after_a_crash_mid_delete_finishes_it(start: Callable[..., ServerProcess],
                                                            settings: Settings) -> None:
    datasets = _study(3)
    server = start(DICOMWEB_FAULT="mid-delete")
    assert _post(server.root, *datasets).status_code == 200
    with pytest.raises(httpx.TransportError):
        httpx.delete(f"{server.root}/studies/{datasets[0].StudyInstanceUID}", timeout=30)
    _died(server)
    assert len(_instance_files(settings)) == 2

    server = start(DICOMWEB_VERIFY_AT_STARTUP="0")
    response = httpx.delete(f"{server.root}/studies/{datasets[0].StudyInstanceUID}", timeout=30)
    assert response.status_code == 204  # not 404 with the files left
    assert _instance_files(settings) == []
    deletes = [entry for entry in _feed(server.root) if entry["action"] == "delete"]
    assert len(deletes) == 3  # one per instance, however many DELETEs it took


def test_kill_after_index_commit_keeps_record_and_entry_together(start: Callable[..., ServerProcess],
                                                                  settings: Settings) -> None:
    ds = make_dataset()
    server = start(DICOMWEB_FAULT="after-index-commit")
    with pytest.raises(httpx.TransportError):
        _post(server.root, ds)
    _died(server)

    server = start()
    creates = [entry for entry in _feed(server.root) if entry["action"] == "create"]
    assert [entry["sopInstanceUid"] for entry in creates] == [ds.SOPInstanceUID]
    url = f"{server.root}/studies/{ds.StudyInstanceUID}/series/{ds.SeriesInstanceUID}/instances/{ds.SOPInstanceUID}"
    assert httpx.get(url + "/metadata", timeout=30).status_code == 200
    frame = httpx.get(url + "/frames/1", headers={"Accept": "application/octet-stream"}, timeout=30)
    assert frame.status_code == 200 and frame.content == ds.PixelData  # its frame index committed with the record
    if settings.index_store == "sqlite":  # no sidecar file written (on Blob Storage they were rebuilt)
        assert stored_names(settings, "instances/") == _instance_files(settings)
    response = httpx.get(url, headers={"Accept": "application/dicom"}, timeout=30)
    assert response.status_code == 200 and response.content == to_bytes(ds)
