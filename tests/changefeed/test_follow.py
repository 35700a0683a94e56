"""The reference subscriber resumes after being killed, with nothing missed."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

import httpx

from tests.support.builders import DICOM, make_dataset, to_bytes
from tests.support.servers import ServerProcess


def _tail(root: str, state, out) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "dicomweb", "changefeed", "tail", "--url", root, "--state", str(state),
         "--poll", "0.05"], stdout=out, stderr=subprocess.DEVNULL)


def _saved(state) -> int:
    try:
        return json.loads(state.read_text())["sequence"]
    except (FileNotFoundError, ValueError):
        return 0


def _lines(path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def test_tail_resumes_after_kill(tmp_path) -> None:
    server = ServerProcess(tmp_path / "data")
    state, output = tmp_path / "position.json", tmp_path / "entries.jsonl"
    try:
        with httpx.Client(timeout=30) as http, open(output, "ab") as out:
            def store(count: int) -> None:
                for _ in range(count):
                    response = http.post(f"{server.root}/studies", content=to_bytes(make_dataset()),
                                         headers={"Content-Type": DICOM})
                    assert response.status_code == 200

            store(30)
            follower = _tail(server.root, state, out)
            deadline = time.monotonic() + 20
            while len(_lines(output)) < 10 and time.monotonic() < deadline:
                time.sleep(0.02)
            follower.send_signal(signal.SIGKILL)
            follower.wait()
            killed_at = len(_lines(output))
            store(20)  # changes made while the subscriber is down
            follower = _tail(server.root, state, out)
            deadline = time.monotonic() + 20
            # caught up: every entry handed over, and the position saved after the last one
            while not (len({e["sequence"] for e in _lines(output)}) == 50 and _saved(state) == 50) \
                    and time.monotonic() < deadline:
                time.sleep(0.05)
            follower.terminate()
            follower.wait()
    finally:
        server.stop()
    sequences = [entry["sequence"] for entry in _lines(output)]
    assert killed_at >= 10
    assert sorted(set(sequences)) == list(range(1, 51))  # nothing missed
    assert len(sequences) - len(set(sequences)) <= 1  # at least once: at most the in-flight entry again
    assert json.loads(state.read_text())["sequence"] == 50
