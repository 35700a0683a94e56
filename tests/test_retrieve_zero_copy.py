"""Study retrieve through ``dicomweb serve``: files go to the socket with ``os.sendfile``
(dicomweb/zero_copy.py), and the bytes on the wire are the streaming path's, byte for byte.

The streaming path is the same app without the extension (Starlette's TestClient on the
same data folder); only the random boundary differs, so it is replaced before comparing.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from io import BytesIO
from pathlib import Path

import httpx
import pytest
from pydicom import Dataset, dcmread
from starlette.testclient import TestClient

from dicomcore import layout
from dicomweb.app import create_app
from dicomweb.http import file_spans
from dicomweb.settings import Settings
from tests.support.builders import make_dataset, multipart_body, parse_multipart, to_bytes
from tests.support.servers import ServerProcess

DICOM_PART = 'multipart/related; type="application/dicom"; transfer-syntax=*'


@pytest.fixture
def study(tmp_path: Path) -> Iterator[tuple[ServerProcess, TestClient, str, list[bytes], list[Dataset]]]:
    """A server with one study of instances of different sizes (one above 4 MiB, so a file
    needs more than one ``sendfile`` round), and a TestClient app on the same folder."""
    server = ServerProcess(tmp_path / "data")
    first = make_dataset(rows=4, columns=4)
    sizes = [(4, 4), (64, 48), (1500, 1500), (7, 3)]  # 1500² × 2 bytes = 4.5 MB
    datasets = [make_dataset(study=first.StudyInstanceUID, series=first.SeriesInstanceUID, rows=r, columns=c,
                             instance_number=n) for n, (r, c) in enumerate(sizes, start=1)]
    files = [to_bytes(ds) for ds in datasets] + [_jpeg_instance(first.StudyInstanceUID)]
    try:
        body, content_type = multipart_body(files)
        stored = httpx.post(f"{server.root}/studies", content=body, headers={"Content-Type": content_type},
                            timeout=60)
        assert stored.status_code == 200, stored.text
        settings = Settings(data_dir=tmp_path / "data", allowed_hosts=("testserver",))
        with TestClient(create_app(settings), base_url="http://testserver") as client:
            yield server, client, first.StudyInstanceUID, files, datasets
    finally:
        server.stop()


def _jpeg_instance(study_uid: str) -> bytes:
    """A JPEG-compressed instance in the study: its part names another transfer syntax."""
    from pydicom.data import get_testdata_file

    ds = dcmread(get_testdata_file("SC_rgb_jpeg_gdcm.dcm"))
    ds.StudyInstanceUID = study_uid
    out = BytesIO()
    ds.save_as(out, enforce_file_format=True)
    return out.getvalue()


def _with_boundary(body: bytes, content_type: str, boundary: str) -> bytes:
    ours = content_type.split("boundary=")[1].split(";")[0].strip().strip('"')
    return body.replace(ours.encode(), boundary.encode())


def test_zero_copy_retrieve_is_byte_identical_to_streaming(study) -> None:
    server, client, study_uid, files, _ = study
    with httpx.Client(timeout=60) as http:
        sent = http.get(f"{server.root}/studies/{study_uid}", headers={"Accept": DICOM_PART})
    streamed = client.get(f"/v1/studies/{study_uid}", headers={"Accept": DICOM_PART})
    assert sent.status_code == streamed.status_code == 200
    assert sent.headers["transfer-encoding"] == "chunked"
    assert sorted(payload for _, payload in parse_multipart(sent.content, sent.headers["content-type"])) \
        == sorted(files)
    assert _with_boundary(sent.content, sent.headers["content-type"], "B") \
        == _with_boundary(streamed.content, streamed.headers["content-type"], "B")
    syntaxes = {headers["content-type"].split("transfer-syntax=")[1]
                for headers, _ in parse_multipart(sent.content, sent.headers["content-type"])}
    assert syntaxes == {"1.2.840.10008.1.2.1", "1.2.840.10008.1.2.4.70"}  # as stored: JPEG lossless


def test_zero_copy_single_instance_has_its_length(study) -> None:
    server, client, study_uid, files, _ = study
    streamed = client.get(f"/v1/studies/{study_uid}", headers={"Accept": DICOM_PART})
    parts = parse_multipart(streamed.content, streamed.headers["content-type"])
    largest = max(files, key=len)
    assert any(payload == largest for _, payload in parts)
    listed = httpx.get(f"{server.root}/studies/{study_uid}/instances", timeout=30).json()
    urls = [f"{server.root}/studies/{study_uid}/series/{item['0020000E']['Value'][0]}/instances/"
            f"{item['00080018']['Value'][0]}" for item in listed]
    with httpx.Client(timeout=60) as http:
        bodies = [http.get(url, headers={"Accept": "application/dicom; transfer-syntax=*"}) for url in urls]
        heads = [http.head(url, headers={"Accept": "application/dicom; transfer-syntax=*"}) for url in urls]
    for response, head in zip(bodies, heads, strict=True):
        assert response.status_code == 200
        assert int(response.headers["content-length"]) == len(response.content)
        assert head.status_code == 200 and head.content == b""
    assert sorted(r.content for r in bodies) == sorted(files)


def test_vanished_files_are_left_out_whole_and_their_records_removed(study, tmp_path: Path) -> None:
    server, _, study_uid, files, datasets = study
    gone = [datasets[0], datasets[2]]  # the first (before the status line) and one in the middle
    for ds in gone:
        key = layout.instance_key(ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID)
        (tmp_path / "data" / "blobs" / layout.file_name(key)).unlink()
    with httpx.Client(timeout=60) as http:
        response = http.get(f"{server.root}/studies/{study_uid}", headers={"Accept": DICOM_PART})
        assert response.status_code == 200
        payloads = [payload for _, payload in parse_multipart(response.content, response.headers["content-type"])]
        assert sorted(payloads) == sorted(files[1:2] + files[3:])
        listed = http.get(f"{server.root}/studies/{study_uid}/instances").json()
    assert {item["00080018"]["Value"][0] for item in listed} \
        == {ds.SOPInstanceUID for ds in datasets if ds not in gone} | {dcmread(BytesIO(files[-1])).SOPInstanceUID}


def test_the_extension_is_offered_only_by_the_server(study) -> None:
    # The in-process app (TestClient, like the Functions adapter) gets no extension.
    assert not file_spans.available({"type": "http"})
    assert file_spans.available({"type": "http", "extensions": {file_spans.EXTENSION: {}}})


def test_a_stalled_or_vanished_reader_does_not_stop_the_others(study) -> None:
    server, _, study_uid, _, _ = study
    # A client that asks and reads nothing holds no thread: others are served meanwhile.
    stalled = socket.create_connection(("127.0.0.1", server.port))
    stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    stalled.sendall(f"GET /v1/studies/{study_uid} HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\n"
                    f"Accept: {DICOM_PART}\r\n\r\n".encode())
    try:
        time.sleep(0.5)
        with httpx.Client(timeout=30) as http:
            assert http.get(f"{server.root}/studies/{study_uid}", headers={"Accept": DICOM_PART}).status_code == 200
    finally:
        stalled.close()
    # One that goes away in the middle of a body: the next requests are answered whole.
    gone = socket.create_connection(("127.0.0.1", server.port))
    gone.sendall(f"GET /v1/studies/{study_uid} HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\n"
                 f"Accept: {DICOM_PART}\r\n\r\n".encode())
    gone.recv(1000)
    gone.close()
    with httpx.Client(timeout=30) as http:
        for _ in range(3):
            response = http.get(f"{server.root}/studies/{study_uid}", headers={"Accept": DICOM_PART})
            assert response.status_code == 200 and len(parse_multipart(response.content,
                                                                       response.headers["content-type"])) == 5
    assert server.process.poll() is None
    assert not [line for line in server.output if "Traceback" in line or "Exception in ASGI" in line], \
        "".join(server.output[-40:])


def test_a_stalled_reader_is_cut_off_after_the_body_timeout(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path / "data", env={"DICOMWEB_BODY_TIMEOUT_SECONDS": "1"})
    try:
        big = make_dataset(rows=1500, columns=1500)  # 4.5 MB: more than the socket buffers hold
        body, content_type = multipart_body([to_bytes(big)])
        assert httpx.post(f"{server.root}/studies", content=body, headers={"Content-Type": content_type},
                          timeout=60).status_code == 200
        stalled = socket.socket()
        stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        stalled.connect(("127.0.0.1", server.port))
        stalled.sendall(f"GET /v1/studies/{big.StudyInstanceUID} HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\n"
                        f"Accept: {DICOM_PART}\r\n\r\n".encode())
        time.sleep(3)  # reads nothing for longer than the timeout
        stalled.settimeout(10)
        received = 0
        while chunk := stalled.recv(1 << 20):  # what was in flight, then the end: the server closed it
            received += len(chunk)
        stalled.close()
        assert 0 < received < len(to_bytes(big))
        assert server.process.poll() is None
    finally:
        server.stop()


def test_more_stalled_readers_than_worker_threads_leave_the_server_answering(study) -> None:
    # The sending thread waits for a full socket only briefly (zero_copy.THREAD_WAIT_MS), then
    # hands the wait to the event loop: clients that read nothing never hold the thread pool
    # (40 threads), so a retrieve and a query, which need threads, are still answered at once.
    server, _, study_uid, files, _ = study
    stalled = []
    try:
        for _ in range(48):
            reader = socket.socket()
            reader.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            reader.connect(("127.0.0.1", server.port))
            reader.sendall(f"GET /v1/studies/{study_uid} HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\n"
                           f"Accept: {DICOM_PART}\r\n\r\n".encode())
            stalled.append(reader)
        time.sleep(1.0)
        with httpx.Client(timeout=10) as http:
            started = time.monotonic()
            retrieved = http.get(f"{server.root}/studies/{study_uid}", headers={"Accept": DICOM_PART})
            found = http.get(f"{server.root}/studies/{study_uid}/instances")
            elapsed = time.monotonic() - started
        assert retrieved.status_code == 200 and found.status_code == 200
        assert len(parse_multipart(retrieved.content, retrieved.headers["content-type"])) == len(files)
        assert elapsed < 5
    finally:
        for reader in stalled:
            reader.close()
    assert server.process.poll() is None
