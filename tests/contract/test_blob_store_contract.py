"""The blob store port's contract, run against every adapter (a folder; Azurite).

What the rest of the server relies on: exclusive writes detect a second copy atomically,
a reader never sees a partly written blob, ranged reads behave at the edges, and
deleting or listing behaves the same whichever store is configured.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import pytest

from dicomweb.storage.port import BlobChangedError, BlobExistsError, BlobNotFoundError, BlobStore

pytestmark = pytest.mark.anyio

BIG = 9 << 20
"""Larger than the Azure store's block size, so the upload is several staged blocks."""


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(params=["filesystem", "azure"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[BlobStore]:
    if request.param == "filesystem":
        from dicomweb.storage.filesystem import FilesystemBlobStore

        blobs: BlobStore = FilesystemBlobStore(tmp_path / "blobs")
    else:
        from dicomweb.storage.azure_blob import AzureBlobStore

        azurite = request.getfixturevalue("azurite")
        blobs = AzureBlobStore(f"contract-{uuid.uuid4().hex[:20]}", connection_string=azurite.connection_string,
                               staging_dir=tmp_path / "staging")
    yield blobs
    await blobs.close()


def staged(store: BlobStore, data: bytes) -> Path:
    path = store.new_staging_path()
    path.write_bytes(data)
    return path


async def test_staging_paths_are_fresh_local_paths(store: BlobStore) -> None:
    first, second = store.new_staging_path(), store.new_staging_path()
    assert first != second
    assert first.parent.is_dir() and not first.exists()


async def test_put_file_stores_and_removes_the_staged_file(store: BlobStore) -> None:
    path = staged(store, b"hello")
    await store.put_file("a/one.dcm", path)
    assert not path.exists()
    assert await store.get_bytes("a/one.dcm") == b"hello"
    assert await store.size("a/one.dcm") == 5


async def test_exclusive_put_refuses_a_second_copy_and_keeps_the_staged_file(store: BlobStore) -> None:
    await store.put_file("a/one.dcm", staged(store, b"first"))
    second = staged(store, b"second")
    with pytest.raises(BlobExistsError):
        await store.put_file("a/one.dcm", second, exclusive=True)
    assert second.read_bytes() == b"second"
    assert await store.get_bytes("a/one.dcm") == b"first"


async def test_put_files_places_many_exclusively_and_keeps_the_refused_ones(store: BlobStore) -> None:
    await store.put_file("b/taken.dcm", staged(store, b"first"))
    items = [("b/one.dcm", staged(store, b"one")), ("b/taken.dcm", staged(store, b"second")),
             ("b/two.dcm", staged(store, b"two"))]
    assert await store.put_files(items) == [True, False, True]
    assert [await store.get_bytes(name) for name in ("b/one.dcm", "b/taken.dcm", "b/two.dcm")] == [
        b"one", b"first", b"two"]
    assert [path.exists() for _, path in items] == [False, True, False]  # a refused file stays where it was


async def test_exclusive_put_refuses_a_second_large_copy(store: BlobStore) -> None:
    await store.put_file("big.dcm", staged(store, os.urandom(BIG)))
    with pytest.raises(BlobExistsError):
        await store.put_file("big.dcm", staged(store, os.urandom(BIG)))


async def test_concurrent_exclusive_puts_let_exactly_one_win(store: BlobStore) -> None:
    payloads = [bytes([i]) * 1000 for i in range(6)]
    results = await asyncio.gather(
        *(store.put_file("race.dcm", staged(store, data)) for data in payloads), return_exceptions=True
    )
    winners = [i for i, result in enumerate(results) if result is None]
    assert len(winners) == 1
    assert all(isinstance(result, BlobExistsError) for result in results if result is not None)
    assert await store.get_bytes("race.dcm") == payloads[winners[0]]


async def test_non_exclusive_put_replaces(store: BlobStore) -> None:
    await store.put_file("x", staged(store, b"old"))
    await store.put_file("x", staged(store, b"new"), exclusive=False)
    assert await store.get_bytes("x") == b"new"


async def test_a_reader_never_sees_a_partly_written_blob(store: BlobStore) -> None:
    data = os.urandom(BIG)
    upload = asyncio.create_task(store.put_file("growing.dcm", staged(store, data)))
    sizes = set()
    while not upload.done():
        try:
            sizes.add(await store.size("growing.dcm"))
        except BlobNotFoundError:
            sizes.add(None)
        await asyncio.sleep(0.001)
    await upload
    assert sizes <= {None, BIG}
    assert await store.get_bytes("growing.dcm") == data


async def test_put_bytes_creates_and_replaces(store: BlobStore) -> None:
    await store.put_bytes("state/cursor.json", b"1")
    await store.put_bytes("state/cursor.json", b"22")
    assert await store.get_bytes("state/cursor.json") == b"22"


async def test_missing_blobs_raise_not_found(store: BlobStore) -> None:
    with pytest.raises(BlobNotFoundError):
        await store.get_bytes("nope")
    with pytest.raises(BlobNotFoundError):
        await store.size("nope")
    with pytest.raises(BlobNotFoundError):
        await store.read_range("nope", 0, 10)
    with pytest.raises(BlobNotFoundError):
        async for _ in store.iter_chunks("nope"):
            pass
    with pytest.raises(BlobNotFoundError):
        await anyio.to_thread.run_sync(store.open_reader, "nope")


@pytest.mark.parametrize(
    ("offset", "length", "expected"),
    [(0, 4, b"0123"), (3, 4, b"3456"), (8, 10, b"89"), (9, 1, b"9"), (10, 5, b""), (50, 5, b"")],
    ids=["start", "middle", "past-end", "last-byte", "at-end", "beyond-end"],
)
async def test_read_range_at_the_edges(store: BlobStore, offset: int, length: int, expected: bytes) -> None:
    await store.put_bytes("digits", b"0123456789")
    assert await store.read_range("digits", offset, length) == expected
    now = store.read_range_now("digits", offset, length)
    assert now is None or now == expected


async def test_versioned_read_fails_once_the_blob_is_replaced_or_gone(store: BlobStore) -> None:
    await store.put_bytes("tile", b"0123456789")
    data, version = await store.read_range_versioned("tile", 2, 3)
    assert data == b"234" and version
    assert await store.read_range_versioned("tile", 5, 2, version) == (b"56", version)
    await store.put_bytes("tile", b"9876543210")  # replaced (same size)
    with pytest.raises(BlobChangedError):
        await store.read_range_versioned("tile", 2, 3, version)
    data, newer = await store.read_range_versioned("tile", 2, 3)
    assert data == b"765" and newer != version
    await store.delete("tile")
    with pytest.raises(BlobNotFoundError):
        await store.read_range_versioned("tile", 2, 3)
    with pytest.raises((BlobNotFoundError, BlobChangedError)):  # If-Match on a missing blob: 412 (RFC 9110)
        await store.read_range_versioned("tile", 2, 3, newer)


async def test_iter_chunks_streams_whole_and_ranges(store: BlobStore) -> None:
    data = os.urandom(3 << 20)
    await store.put_file("stream", staged(store, data))
    chunks = [chunk async for chunk in store.iter_chunks("stream", chunk_size=1 << 20)]
    assert b"".join(chunks) == data
    assert all(0 < len(chunk) <= 1 << 20 for chunk in chunks)
    part = [chunk async for chunk in store.iter_chunks("stream", offset=1000, length=2 << 20, chunk_size=300_000)]
    assert b"".join(part) == data[1000:1000 + (2 << 20)]
    assert all(len(chunk) <= 300_000 for chunk in part)
    tail = b"".join([chunk async for chunk in store.iter_chunks("stream", offset=len(data) - 10)])
    assert tail == data[-10:]
    head = b"".join([chunk async for chunk in store.iter_chunks("stream", offset=0, length=10)])
    assert head == data[:10]


async def test_open_local_is_the_whole_file_or_none(store: BlobStore) -> None:
    data = os.urandom(300_000)
    await store.put_file("local", staged(store, data))
    await store.put_bytes("small", b"0123")
    opened = await store.open_local(["local", "absent", "small"])
    if opened is None:  # a store without local files: responses stream the blob instead
        return
    try:
        local, absent, small = opened
        assert absent is None
        assert local is not None and small is not None
        assert (local.size, small.size) == (len(data), 4)
        assert os.pread(local.handle.fileno(), len(data) + 1, 0) == data
        assert os.pread(small.handle.fileno(), 10, 0) == b"0123"
    finally:
        for file in opened:
            if file is not None:
                file.handle.close()


async def test_missing_local_names_the_absent_or_is_none(store: BlobStore) -> None:
    await store.put_bytes("here", b"1")
    missing = await store.missing_local(["here", "absent", "also/absent"])
    assert missing is None or missing == ["absent", "also/absent"]


async def test_missing_local_refuses_a_name_outside_the_store(store: BlobStore) -> None:
    if await store.missing_local([]) is None:
        return  # no local files (Blob Storage): nothing is looked up
    for name in ("../outside", "/etc/passwd", "a/../../b"):
        with pytest.raises(ValueError, match="invalid blob name"):
            await store.missing_local([name])


async def test_an_empty_blob(store: BlobStore) -> None:
    await store.put_bytes("empty", b"")
    assert await store.get_bytes("empty") == b""
    assert await store.size("empty") == 0
    assert await store.read_range("empty", 0, 10) == b""
    assert [chunk async for chunk in store.iter_chunks("empty")] in ([], [b""])


async def test_open_reader_is_a_seekable_file_for_worker_threads(store: BlobStore) -> None:
    data = os.urandom(700_000)  # several read-ahead blocks
    await store.put_file("reader", staged(store, data))

    def exercise() -> None:
        with store.open_reader("reader") as reader:
            assert reader.read(4) == data[:4]
            assert reader.tell() == 4
            reader.seek(300_000)
            assert reader.read(10) == data[300_000:300_010]
            reader.seek(-5, os.SEEK_CUR)
            assert reader.read(5) == data[300_005:300_010]
            assert reader.seek(0, os.SEEK_END) == len(data)
            assert reader.read(10) == b""
            reader.seek(len(data) - 3)
            assert reader.read(100) == data[-3:]
            reader.seek(0)
            assert reader.read() == data

    await anyio.to_thread.run_sync(exercise)
    results = await asyncio.gather(*(anyio.to_thread.run_sync(exercise) for _ in range(4)))
    assert len(results) == 4


async def test_delete_removes_and_a_missing_blob_is_fine(store: BlobStore) -> None:
    await store.put_bytes("gone", b"x")
    await store.delete("gone")
    with pytest.raises(BlobNotFoundError):
        await store.get_bytes("gone")
    await store.delete("gone")
    await store.delete("never/was")


async def test_list_names_by_prefix(store: BlobStore) -> None:
    for name in ["a/2", "a/1", "ab/3", "b/4"]:
        await store.put_bytes(name, b".")
    assert [name async for name in store.list_names("a/")] == ["a/1", "a/2"]
    assert [name async for name in store.list_names("a")] == ["a/1", "a/2", "ab/3"]
    assert [name async for name in store.list_names("")] == ["a/1", "a/2", "ab/3", "b/4"]
    assert [name async for name in store.list_names("zzz")] == []


async def test_move_renames_a_large_blob(store: BlobStore) -> None:
    data = os.urandom(BIG)
    await store.put_file("incoming/batch/a.dcm", staged(store, data))
    await store.move("incoming/batch/a.dcm", "instances/ab/abc/instance.dcm")
    assert await store.get_bytes("instances/ab/abc/instance.dcm") == data
    with pytest.raises(BlobNotFoundError):
        await store.size("incoming/batch/a.dcm")
    assert [name async for name in store.list_names("incoming/")] == []


async def test_move_is_exclusive_at_the_target(store: BlobStore) -> None:
    await store.put_bytes("incoming/new", b"new")
    await store.put_bytes("kept", b"old")
    with pytest.raises(BlobExistsError):
        await store.move("incoming/new", "kept")
    assert await store.get_bytes("kept") == b"old"
    assert await store.get_bytes("incoming/new") == b"new"


async def test_moving_a_missing_blob_is_not_found(store: BlobStore) -> None:
    with pytest.raises(BlobNotFoundError):
        await store.move("incoming/never", "target")
    with pytest.raises(BlobNotFoundError):
        await store.size("target")


async def test_concurrent_moves_of_one_blob_all_finish_it(store: BlobStore) -> None:
    """Repeated events move the same file at once: each ends well or finds it gone."""
    await store.put_bytes("incoming/twice", b"payload")
    results = await asyncio.gather(*(store.move("incoming/twice", "moved") for _ in range(5)), return_exceptions=True)
    assert None in results
    assert all(result is None or isinstance(result, BlobNotFoundError) for result in results)
    assert await store.get_bytes("moved") == b"payload"
    assert [name async for name in store.list_names("incoming/")] == []


async def test_concurrent_moves_to_one_target_let_exactly_one_win(store: BlobStore) -> None:
    for i in range(4):
        await store.put_bytes(f"incoming/{i}", bytes([i]) * 100)
    results = await asyncio.gather(*(store.move(f"incoming/{i}", "race") for i in range(4)), return_exceptions=True)
    winners = [i for i, result in enumerate(results) if result is None]
    assert len(winners) == 1
    assert all(isinstance(result, BlobExistsError) for result in results if result is not None)
    assert await store.get_bytes("race") == bytes([winners[0]]) * 100
    left = [name async for name in store.list_names("incoming/")]
    assert left == sorted(f"incoming/{i}" for i in range(4) if i != winners[0])


async def _copy_without_removing(store: BlobStore, source: str, target: str) -> None:
    """The state a move leaves when it stops between its two steps (adapter-specific)."""
    from dicomweb.storage.filesystem import SOURCE_MARK, FilesystemBlobStore, source_identity

    if isinstance(store, FilesystemBlobStore):
        (store.root / target).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(store.root / source, store.root / target)
        os.setxattr(store.root / target, SOURCE_MARK, source_identity(os.lstat(store.root / source)).encode())
        return
    from urllib.parse import quote

    client = await store._client()  # type: ignore[attr-defined]
    src, dst = client.get_blob_client(source), client.get_blob_client(target)
    etag = (await src.get_blob_properties()).etag
    await dst.start_copy_from_url(src.url, metadata={"dicomwebmovedfrom": quote(source, safe=""),
                                                     "dicomwebmovedetag": etag.strip('"')})


async def test_a_move_interrupted_after_its_copy_is_finished_by_repeating_it(store: BlobStore) -> None:
    await store.put_bytes("incoming/half", b"moved")
    await _copy_without_removing(store, "incoming/half", "done")
    await store.move("incoming/half", "done")
    assert await store.get_bytes("done") == b"moved"
    assert [name async for name in store.list_names("incoming/")] == []
    await store.put_bytes("incoming/half", b"another file, same name")
    with pytest.raises(BlobExistsError):
        await store.move("incoming/half", "done")
