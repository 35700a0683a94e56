"""``dicomweb serve`` against slow and idle clients: raw sockets on a real server process.

Idle connections and half-sent headers used to be kept forever (about 1,000 of them locked
every client out); a stalled upload held its staging file forever.
"""

from __future__ import annotations

import contextlib
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.servers import ServerProcess

TIMEOUT = 2.0


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("guarded") / "data"


@pytest.fixture(scope="module")
def guarded(data: Path) -> Iterator[ServerProcess]:
    """One server for the module (starting one costs seconds on a busy machine)."""
    server = ServerProcess(data, env={
        "DICOMWEB_HEADER_TIMEOUT_SECONDS": str(TIMEOUT), "DICOMWEB_BODY_TIMEOUT_SECONDS": str(TIMEOUT),
        "DICOMWEB_KEEPALIVE_SECONDS": "1", "DICOMWEB_MAX_CONNECTIONS": "8"})
    yield server
    server.stop()


def _connect(server: ServerProcess) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", server.port))
    sock.settimeout(10)
    return sock


def _closed_within(sock: socket.socket, seconds: float) -> bytes:
    """What the server sent before closing, failing if it is still open after ``seconds``."""
    started, received = time.monotonic(), b""
    while True:
        try:
            chunk = sock.recv(4096)
        except ConnectionResetError:  # closed with our bytes unread: the kernel resets
            break
        if not chunk:
            break
        received += chunk
    assert time.monotonic() - started < seconds
    return received


def test_idle_connections_are_closed_and_do_not_lock_clients_out(guarded: ServerProcess) -> None:
    idle = [_connect(guarded) for _ in range(8)]  # accepted before the request below
    assert httpx.get(f"{guarded.root}/studies").status_code == 503  # the cap holds...
    for sock in idle:
        assert _closed_within(sock, TIMEOUT + 3).startswith(b"HTTP/1.1 408")
        sock.close()
    assert httpx.get(f"{guarded.root}/studies").status_code == 200  # ...and is given back


def test_headers_sent_a_byte_at_a_time_meet_a_deadline(guarded: ServerProcess) -> None:
    sock = _connect(guarded)
    started = time.monotonic()
    request = b"GET /v1/studies HTTP/1.1\r\nHost: 127.0.0.1\r\n" + b"X-Slow: " + b"a" * 200
    try:
        for byte in request:
            sock.sendall(bytes([byte]))
            time.sleep(0.05)
            if time.monotonic() - started > TIMEOUT + 3:
                break
    except OSError:
        pass  # closed by the server while sending: what the test wants
    assert time.monotonic() - started < TIMEOUT + 3
    assert _closed_within(sock, 3).startswith(b"HTTP/1.1 408")
    sock.close()


def test_oversized_headers_are_refused_before_they_end(guarded: ServerProcess) -> None:
    sock = _connect(guarded)
    with contextlib.suppress(OSError):
        sock.sendall(b"GET /v1/studies HTTP/1.1\r\nHost: 127.0.0.1\r\n" + b"X-Big: " + b"a" * 200_000)
    answer = _closed_within(sock, 3)
    assert answer.startswith(b"HTTP/1.1 431") or answer == b""  # b"": the reset overtook the answer
    sock.close()
    assert httpx.get(f"{guarded.root}/studies").status_code == 200


def test_a_stalled_upload_is_dropped_and_its_staging_file_removed(guarded: ServerProcess, data: Path) -> None:
    sock = _connect(guarded)
    sock.sendall(b"POST /v1/studies HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/dicom\r\n"
                 b"Content-Length: 1000000\r\n\r\n" + b"x" * 100_000)
    assert _closed_within(sock, TIMEOUT + 3) == b""  # mid-body: nobody is told, the connection ends
    sock.close()
    staging = data / "blobs" / ".staging"
    deadline = time.monotonic() + 3
    while list(staging.iterdir()) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert list(staging.iterdir()) == []
    assert httpx.get(f"{guarded.root}/studies").status_code == 200


def test_a_slow_but_steady_upload_is_not_cut(guarded: ServerProcess) -> None:
    from tests.support.builders import DICOM, make_dataset, to_bytes

    data = to_bytes(make_dataset(rows=64, columns=64))
    sock = _connect(guarded)
    sock.sendall(f"POST /v1/studies HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: {DICOM}\r\n"
                 f"Content-Length: {len(data)}\r\nAccept: application/dicom+json\r\n\r\n".encode())
    step = len(data) // 6 + 1
    for start in range(0, len(data), step):  # ~2.5 s in all, every pause under the timeout
        sock.sendall(data[start:start + step])
        time.sleep(TIMEOUT / 2)
    assert sock.recv(100).startswith(b"HTTP/1.1 200")
    sock.close()
