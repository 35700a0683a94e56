"""A STOW part received in memory, from the multipart reader to its file (docs/stow-receive.md):
the reader holds a part up to the limit and spools a larger one; the embedded store writes the
bytes once, fsyncs them before they get their name and the name before it returns, refuses a
taken name, and leaves nothing behind."""

from __future__ import annotations

import hashlib
import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from dicomweb.http.multipart import BodyTooLargeError, read_parts, receive_body
from dicomweb.storage.filesystem import FilesystemBlobStore
from dicomweb.storage.port import BlobExistsError

DATA = os.urandom(300_000)


def test_new_bytes_are_stored_once_and_nothing_is_left(tmp_path: Path) -> None:
    store = FilesystemBlobStore(tmp_path / "blobs")
    store.put_new_bytes_blocking("s/e/one.dcm", DATA)  # its folders do not exist yet
    store.put_new_bytes_blocking("s/e/two.dcm", DATA[:10])
    assert (tmp_path / "blobs/s/e/one.dcm").read_bytes() == DATA
    assert (tmp_path / "blobs/s/e/two.dcm").read_bytes() == DATA[:10]
    assert (tmp_path / "blobs/s/e/one.dcm").stat().st_mode & 0o777 == 0o600
    assert list(store.staging_dir.iterdir()) == []


def test_a_taken_name_is_refused_and_keeps_the_first_copy(tmp_path: Path) -> None:
    store = FilesystemBlobStore(tmp_path / "blobs")
    store.put_new_bytes_blocking("s/one.dcm", b"first")
    with pytest.raises(BlobExistsError):
        store.put_new_bytes_blocking("s/one.dcm", b"second")
    assert (tmp_path / "blobs/s/one.dcm").read_bytes() == b"first"
    assert sorted(os.listdir(tmp_path / "blobs/s")) == ["one.dcm"]
    assert list(store.staging_dir.iterdir()) == []


def test_the_bytes_are_fsynced_before_they_are_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A crash (kill -9, power loss) never leaves a partial file under the instance's name,
    and the name is on disk before the store returns (before STOW answers 200)."""
    calls: list[str] = []
    real_fsync, real_link = os.fsync, os.link

    def fsync(fd: int) -> None:
        calls.append("fsync folder" if os.path.isdir(f"/proc/self/fd/{fd}") else "fsync file")
        real_fsync(fd)

    def link(*args: object, **kwargs: object) -> None:
        calls.append("link")
        real_link(*args, **kwargs)  # type: ignore[arg-type]

    store = FilesystemBlobStore(tmp_path / "blobs")
    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "link", link)
    store.put_new_bytes_blocking("s/one.dcm", DATA)
    assert calls == ["fsync file", "link", "fsync folder"]
    assert (tmp_path / "blobs/s/one.dcm").read_bytes() == DATA


async def _body(data: bytes, size: int) -> AsyncIterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start:start + size]


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_the_reader_holds_parts_up_to_the_limit_and_spools_larger_ones(tmp_path: Path, anyio_backend: str
                                                                           ) -> None:
    parts = [DATA[:1000], DATA[:1001], b"", DATA]
    body = b"".join(b"--b\r\nContent-Type: application/dicom\r\n\r\n" + part + b"\r\n" for part in parts) + b"--b--\r\n"
    paths = iter(tmp_path / str(n) for n in range(10))
    received = [part async for part in read_parts(_body(body, 333), "b", lambda: next(paths),
                                                  max_bytes=len(body), memory_part_bytes=1000)]
    assert [part.data for part in received] == [DATA[:1000], None, b"", None]
    assert [part.size for part in received] == [1000, 1001, 0, len(DATA)]
    assert received[1].path.read_bytes() == DATA[:1001] and received[3].path.read_bytes() == DATA
    assert received[0].sha256 == "" and len(received[3].sha256) == 64
    assert sorted(os.listdir(tmp_path)) == ["1", "3"]  # nothing written for the parts held in memory


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_a_single_part_body_is_held_up_to_the_limit_then_spooled(tmp_path: Path, anyio_backend: str) -> None:
    held = await receive_body(_body(DATA[:1000], 333), tmp_path / "held", max_bytes=10**6, memory_bytes=1000)
    assert (held.data, held.size, held.sha256) == (DATA[:1000], 1000, "")
    assert not (tmp_path / "held").exists()
    spooled = await receive_body(_body(DATA[:1001], 333), tmp_path / "spooled", max_bytes=10**6, memory_bytes=1000)
    assert spooled.data is None and spooled.size == 1001
    assert spooled.sha256 == hashlib.sha256(DATA[:1001]).hexdigest()
    assert (tmp_path / "spooled").read_bytes() == DATA[:1001]
    with pytest.raises(BodyTooLargeError):  # the size limit holds while the body is held in memory
        await receive_body(_body(DATA[:1000], 333), tmp_path / "big", max_bytes=999, memory_bytes=1000)
