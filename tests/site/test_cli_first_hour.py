"""The command line of the first hour: ``--version``, the request log (on by default, no query
string, ``--quiet`` turns it off), the start page announced, and ``dicomweb demo``."""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from starlette.testclient import TestClient

from dicomweb import __version__
from dicomweb.composition import build_services
from dicomweb.demo.load import load_demo
from dicomweb.demo.samples import CT, MR, PATIENT_ID, SLIDE
from dicomweb.settings import Settings
from dicomweb.usecases.store_instance import FailureReason
from tests.support.servers import ServerProcess

REPO = Path(__file__).resolve().parents[2]


def test_version() -> None:
    result = subprocess.run([sys.executable, "-m", "dicomweb", "--version"], capture_output=True, text=True,
                            cwd=REPO, timeout=60)
    assert (result.returncode, result.stdout.strip()) == (0, f"dicomweb {__version__}")


def _wait_for_line(server: ServerProcess, pattern: str, timeout: float = 10) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for line in list(server.output):
            if re.search(pattern, line):
                return line
        time.sleep(0.05)
    raise AssertionError(f"no line matching {pattern!r} in {server.output}")


def test_serve_logs_one_line_per_request_without_the_query(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path / "data", quiet=False)
    try:
        assert httpx.get(f"{server.root}/studies", params={"PatientName": "SECRET^NAME*"}).status_code in (200, 204)
        assert httpx.get(server.root.removesuffix("/v1") + "/health").status_code == 200
        line = _wait_for_line(server, r"GET /health ")
        assert re.search(r"GET /health 200 \d+\.\d ms$", line.strip()), line
        studies = _wait_for_line(server, r"GET /v1/studies ")
        assert re.search(r"GET /v1/studies 20[04] \d+\.\d ms$", studies.strip()), studies
        assert not [printed for printed in server.output if "SECRET" in printed or "PatientName" in printed]
        assert _wait_for_line(server, r"Start page: http://127\.0\.0\.1:\d+/ ")
    finally:
        server.stop()


def test_quiet_serve_logs_no_requests(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path / "data", quiet=True)
    try:
        assert httpx.get(server.root.removesuffix("/v1") + "/health").status_code == 200
        time.sleep(0.5)
        assert not [line for line in server.output if "/health" in line], server.output
    finally:
        server.stop()


@pytest.mark.both_backends
def test_demo_loads_the_sample_studies_once(settings: Settings, client: TestClient) -> None:
    async def load() -> list[FailureReason | None]:
        services = build_services(settings)
        try:
            outcomes = await load_demo(services.store, services.index, services.blobs.new_staging_path)
        finally:
            await services.close()
        return [outcome.failure for outcome in outcomes]

    first = asyncio.run(load())
    assert first == [None] * 10  # 5 CT slices, 2 MR (one multi-frame), 3 slide levels
    again = asyncio.run(load())
    assert again == [FailureReason.ALREADY_STORED] * 7  # the slide, already there, is not made again

    found = client.get("/v1/studies", params={"PatientName": "DEMO*", "includefield": "StudyDescription"})
    assert found.status_code == 200
    studies = {study["0020000D"]["Value"][0]: study for study in found.json()}
    assert set(studies) == {CT.study_uid, MR.study_uid, SLIDE.study_uid}
    assert {study["00100020"]["Value"][0] for study in studies.values()} == {PATIENT_ID}
    assert studies[SLIDE.study_uid]["00080061"]["Value"] == ["SM"]
    assert studies[CT.study_uid]["00201208"]["Value"] == [5]
    frames = client.get("/v1/instances", params={"StudyInstanceUID": MR.study_uid, "includefield": "NumberOfFrames"})
    assert sorted(int(i.get("00280008", {}).get("Value", [1])[0]) for i in frames.json()) == [1, 10]
    assert client.get("/").text.count('<b id="instances">10</b>') == 1
