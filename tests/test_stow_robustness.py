"""STOW against a real server when clients misbehave: cut connections, concurrent duplicates."""

from __future__ import annotations

import socket
import time

import httpx

from tests.support.builders import make_dataset, multipart_body, to_bytes
from tests.support.servers import ServerProcess


def test_connection_cut_mid_request_keeps_what_was_stored(tmp_path) -> None:
    server = ServerProcess(tmp_path / "data")
    try:
        first, second = make_dataset(), make_dataset(rows=256, columns=256)
        body, content_type = multipart_body([to_bytes(first), to_bytes(second)])
        cut = len(body) - 50_000  # inside the second part
        head = (f"POST /v1/studies HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: {content_type}\r\n"
                f"Content-Length: {len(body)}\r\n\r\n").encode()
        with socket.create_connection(("127.0.0.1", server.port)) as sock:
            sock.sendall(head + body[:cut])
            time.sleep(0.5)  # let the server store the first part
        with httpx.Client(timeout=30) as http:
            deadline = time.monotonic() + 10
            found = []
            while not found and time.monotonic() < deadline:
                found = http.get(f"{server.root}/instances", params={"SOPInstanceUID": first.SOPInstanceUID}).json()
                time.sleep(0.1)
            assert len(found) == 1
            assert http.get(f"{server.root}/instances", params={"SOPInstanceUID": second.SOPInstanceUID}).json() == []
            # the server is healthy, and the half-sent instance can be sent again in full
            response = http.post(f"{server.root}/studies", content=body, headers={"Content-Type": content_type})
            assert response.status_code == 202  # first: already stored (45070); second: stored
            assert "45070" in response.text
        staging = list((tmp_path / "data" / "blobs" / ".staging").iterdir())
        assert staging == []  # no half-written upload left behind
    finally:
        server.stop()
