"""On the embedded store: an import stopped with the server (a clean stop) resumes when the
server starts again, and an instance already sent by STOW is counted skipped, never stored twice."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from dicomweb.app import create_app
from dicomweb.composition import build_services
from dicomweb.settings import Settings
from dicomweb.usecases import import_files
from dicomweb.usecases.import_files import import_input
from dicomweb.usecases.operations.lifecycle import start_operation
from indexing.operation_store import OperationState, Status
from indexing.sqlite.operation_store import SqliteOperationStore
from tests.support.builders import many_instances
from tests.support.import_area import wait_for_operation

STUDY = "1.2.826.0.1.3680043.8.498.7007"
FILES = 40


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    settings = Settings(data_dir=tmp_path / "data", allowed_hosts=("testserver",))
    for i, blob in enumerate(many_instances(STUDY, FILES)):
        path = settings.import_path / "r" / f"{i:03d}.dcm"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(blob)
    return settings


def test_an_import_stopped_with_the_server_resumes_at_the_next_start(settings: Settings,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(import_files, "PAGE_SIZE", 2)
    with TestClient(create_app(settings)) as client:
        href = client.post("/v1/import", json={"source": {"prefix": "r/"}}).json()["href"]
        deadline = time.monotonic() + 30
        while client.get(href).json()["percentComplete"] == 0:  # a checkpoint or two, then stop
            assert time.monotonic() < deadline
            time.sleep(0.02)
    stopped = asyncio.run(_state(settings, href.rsplit("/", 1)[1]))
    assert stopped.status is Status.RUNNING and stopped.checkpoint is not None  # left mid-way
    with TestClient(create_app(settings)) as client:
        operation = wait_for_operation(client.get, href)
        assert operation["status"] == "succeeded"
        results = operation["results"]
        assert results["imported"] + results["skipped"] == FILES and results["failed"] == 0
        assert len(client.get(f"/v1/studies/{STUDY}/instances").json()) == FILES
        assert len(client.get("/v1/changefeed", params={"limit": 100}).json()) == FILES


async def _state(settings: Settings, operation_id: str) -> OperationState:
    store = SqliteOperationStore(settings.data_dir / "index.sqlite")
    state = await store.get(operation_id)
    await store.close()
    assert state is not None
    return state


def test_an_instance_sent_by_stow_is_skipped(settings: Settings) -> None:
    with TestClient(create_app(settings)) as client:
        sent = (settings.import_path / "r" / "000.dcm").read_bytes()
        dicom = {"Content-Type": "application/dicom"}
        assert client.post("/v1/studies", content=sent, headers=dicom).status_code == 200
        started = client.post("/v1/import", json={"source": {"prefix": "r/"}}).json()
        operation = wait_for_operation(client.get, started["href"])
        assert (operation["results"]["imported"], operation["results"]["skipped"]) == (FILES - 1, 1)
        assert len(client.get("/v1/changefeed", params={"limit": 100}).json()) == FILES


def test_two_server_processes_resume_an_operation_once(settings: Settings) -> None:
    """Two runners over one data folder (as ``--workers 2``): the operation's lock lets one run it."""

    async def run() -> OperationState:
        first, second = build_services(settings), build_services(settings)
        try:
            state = await start_operation(first.operations, NoStart(), "import", import_input("r/", None, False))
            assert first.local_runner is not None and second.local_runner is not None
            await first.local_runner.resume_unfinished()
            await second.local_runner.resume_unfinished()
            await second.local_runner.wait(state.operation_id)
            await first.local_runner.wait(state.operation_id)
            final = await first.operations.get(state.operation_id)
            assert final is not None
            return final
        finally:
            await first.close()
            await second.close()

    final = asyncio.run(run())
    assert final.status is Status.SUCCEEDED
    assert final.results == {"imported": FILES, "skipped": 0, "failed": 0}  # nobody else stored any of them


class NoStart:
    async def start(self, state: OperationState) -> None:
        pass  # the runners pick it up as an unfinished operation
