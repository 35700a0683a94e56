"""The embedded blob store: a local folder.

Durability: a blob is written under a temporary name, fsynced, then linked (exclusive)
or renamed (replace) into place, and the folder is fsynced; a reader never sees a partial
file and a crash never leaves one under a real name.

Blob-created events: Blob Storage announces every new blob through Event Grid; this store
does the same in-process through ``on_blob_created`` (called with the name and size after
each write or move), so the embedded server feeds the same indexing handler.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import BinaryIO

from dicomcore.threads import in_thread
from dicomweb.storage.port import BlobExistsError, BlobNotFoundError
from dicomweb.storage.staging import remove_stale


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


BlobCreatedHook = Callable[[str, int], None]
"""Called on the event loop with a new blob's name and size."""


def _open_and_read(path: Path, offset: int, size: int) -> tuple[BinaryIO, bytes]:
    handle = open(path, "rb")  # noqa: SIM115 - closed by the caller, after its last read
    try:
        handle.seek(offset)
        return handle, handle.read(size)
    except BaseException:
        handle.close()
        raise


def _same_file(a: Path, b: Path) -> bool:
    """Both names are links to one file (false when either is missing)."""
    try:
        return os.path.samefile(a, b)
    except FileNotFoundError:
        return False


class FilesystemBlobStore:
    """Blobs as files under ``root``; names map to relative paths."""

    def __init__(self, root: Path, on_blob_created: BlobCreatedHook | None = None) -> None:
        self.root = root
        self.staging_dir = root / ".staging"
        self.staging_dir.mkdir(parents=True, exist_ok=True)
        self.on_blob_created = on_blob_created

    def _announce(self, name: str, size: int) -> None:
        if self.on_blob_created is not None:
            self.on_blob_created(name, size)

    def _path(self, name: str) -> Path:
        if name.startswith("/") or ".." in name.split("/"):
            raise ValueError(f"invalid blob name {name!r}")
        return self.root / name

    def new_staging_path(self) -> Path:
        return self.staging_dir / uuid.uuid4().hex

    # -- writes -------------------------------------------------------------------------

    def _put_file(self, name: str, path: Path, exclusive: bool, durable: bool = True) -> None:
        target = self._path(name)
        target.parent.mkdir(parents=True, exist_ok=True)
        if durable:
            with open(path, "rb+") as staged:
                os.fsync(staged.fileno())
        if exclusive:
            try:
                os.link(path, target)  # atomic, fails if the name is taken
            except FileExistsError as exc:
                raise BlobExistsError(name) from exc
            os.unlink(path)
        else:
            os.replace(path, target)
        if durable:
            _fsync_dir(target.parent)

    async def put_file(self, name: str, path: Path, *, exclusive: bool = True) -> None:
        size = path.stat().st_size
        await in_thread(self._put_file, name, path, exclusive)
        self._announce(name, size)

    def _put_bytes(self, name: str, data: bytes, durable: bool) -> None:
        staged = self.new_staging_path()
        with open(staged, "wb") as out:
            out.write(data)
        self._put_file(name, staged, exclusive=False, durable=durable)

    async def put_bytes(self, name: str, data: bytes, *, durable: bool = True) -> None:
        await in_thread(self._put_bytes, name, data, durable)
        self._announce(name, len(data))

    def _move(self, source: str, target: str) -> int:
        src, dst = self._path(source), self._path(target)
        dst.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.link(src, dst)  # atomic and exclusive, and no byte is copied
        except FileNotFoundError as exc:
            raise BlobNotFoundError(source) from exc
        except FileExistsError as exc:
            if not _same_file(src, dst):
                if not src.exists():  # checked after: a concurrent move may finish in between
                    raise BlobNotFoundError(source) from exc
                raise BlobExistsError(target) from exc
            # else: an interrupted or concurrent move of this very file; finish it
        _fsync_dir(dst.parent)
        size = dst.stat().st_size
        if _same_file(src, dst):  # a file written again under the source name meanwhile stays
            src.unlink(missing_ok=True)
            self._prune_empty_folder(src.parent)
        return size

    async def move(self, source: str, target: str) -> None:
        size = await in_thread(self._move, source, target)
        self._announce(target, size)

    def _prune_empty_folder(self, folder: Path) -> None:
        """Remove a sub-folder a move emptied (``incoming/batch-7/``), never a top-level one
        such as ``incoming/`` itself, where users drop files."""
        if folder.parent != self.root and self.root in folder.parents:
            with contextlib.suppress(OSError):
                folder.rmdir()

    # -- reads --------------------------------------------------------------------------

    def _get_bytes(self, name: str) -> bytes:
        try:
            return self._path(name).read_bytes()
        except FileNotFoundError as exc:
            raise BlobNotFoundError(name) from exc

    async def get_bytes(self, name: str) -> bytes:
        return await in_thread(self._get_bytes, name)

    def _get_many(self, names: list[str]) -> list[bytes | None]:
        found: list[bytes | None] = []
        for name in names:
            try:
                found.append(self._path(name).read_bytes())
            except FileNotFoundError:
                found.append(None)
        return found

    async def get_many(self, names: list[str]) -> list[bytes | None]:
        # One trip to a worker thread for all of them: each read is ~20 µs, a thread hop more.
        return await in_thread(self._get_many, names)

    def read_range_now(self, name: str, offset: int, length: int) -> bytes | None:
        try:
            fd = os.open(self._path(name), os.O_RDONLY)
        except FileNotFoundError as exc:
            raise BlobNotFoundError(name) from exc
        try:
            return os.pread(fd, length, offset)
        finally:
            os.close(fd)

    def version_now(self, name: str) -> str | None:
        try:
            stat = os.stat(self._path(name))
        except FileNotFoundError as exc:
            raise BlobNotFoundError(name) from exc
        # A replaced file is a new inode (files are linked or renamed into place, never rewritten).
        return f"{stat.st_ino}:{stat.st_mtime_ns}"

    async def read_range(self, name: str, offset: int, length: int) -> bytes:
        if length <= 4 << 20:
            return self.read_range_now(name, offset, length)  # type: ignore[return-value]
        return await in_thread(self.read_range_now, name, offset, length)  # type: ignore[arg-type]

    async def iter_chunks(
        self, name: str, *, offset: int = 0, length: int | None = None, chunk_size: int = 1 << 20
    ) -> AsyncIterator[bytes]:
        path = self._path(name)
        first = chunk_size if length is None else min(chunk_size, length)
        try:
            # Opening and the first read in one worker trip: a file smaller than a chunk (an
            # instance of a study retrieve) costs one trip, not three (docs/performance.md).
            handle, chunk = await in_thread(_open_and_read, path, offset, first)
        except FileNotFoundError as exc:
            raise BlobNotFoundError(name) from exc
        try:
            remaining = length
            size = first
            while chunk:
                if remaining is not None:
                    remaining -= len(chunk)
                yield chunk
                if len(chunk) < size or (remaining is not None and remaining <= 0):
                    break  # a short read of a regular file is its end
                size = chunk_size if remaining is None else min(chunk_size, remaining)
                chunk = await in_thread(handle.read, size)
        finally:
            handle.close()

    async def size(self, name: str) -> int:
        try:
            return self._path(name).stat().st_size
        except FileNotFoundError as exc:
            raise BlobNotFoundError(name) from exc

    def open_reader(self, name: str) -> BinaryIO:
        try:
            return open(self._path(name), "rb")
        except FileNotFoundError as exc:
            raise BlobNotFoundError(name) from exc

    async def delete(self, name: str) -> None:
        def remove() -> None:
            path = self._path(name)
            path.unlink(missing_ok=True)
            with contextlib.suppress(OSError):  # drop the instance folder when it is empty
                path.parent.rmdir()

        await in_thread(remove)

    async def list_names(self, prefix: str) -> AsyncIterator[str]:
        # Walk only the folder the prefix lies in: scanning incoming/ every few seconds
        # must not cost a walk of every stored instance.
        start = self.root / prefix.rpartition("/")[0]

        def walk() -> list[str]:
            names = []
            for folder, dirs, files in os.walk(start):
                dirs[:] = [d for d in dirs if d != ".staging"]
                for file in files:
                    name = os.path.relpath(os.path.join(folder, file), self.root).replace(os.sep, "/")
                    if name.startswith(prefix):
                        names.append(name)
            return sorted(names)

        for name in await in_thread(walk):
            yield name

    async def clean_staging(self, older_than_seconds: float, *, dry_run: bool = False) -> int:
        return await in_thread(remove_stale, self.staging_dir, older_than_seconds, dry_run)

    async def close(self) -> None:
        pass  # no connections to release
