"""The embedded blob store: a local folder.

Durability: a blob is written under a temporary name, fsynced, then linked (exclusive)
or renamed (replace) into place, and the folder is fsynced; a reader never sees a partial
file and a crash never leaves one under a real name.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import BinaryIO

from starlette.concurrency import run_in_threadpool

from dicomweb.storage.port import BlobExistsError, BlobNotFoundError


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class FilesystemBlobStore:
    """Blobs as files under ``root``; names map to relative paths."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.staging_dir = root / ".staging"
        self.staging_dir.mkdir(parents=True, exist_ok=True)

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
        await run_in_threadpool(self._put_file, name, path, exclusive)

    def _put_bytes(self, name: str, data: bytes, durable: bool) -> None:
        staged = self.new_staging_path()
        with open(staged, "wb") as out:
            out.write(data)
        self._put_file(name, staged, exclusive=False, durable=durable)

    async def put_bytes(self, name: str, data: bytes, *, durable: bool = True) -> None:
        await run_in_threadpool(self._put_bytes, name, data, durable)

    # -- reads --------------------------------------------------------------------------

    def _get_bytes(self, name: str) -> bytes:
        try:
            return self._path(name).read_bytes()
        except FileNotFoundError as exc:
            raise BlobNotFoundError(name) from exc

    async def get_bytes(self, name: str) -> bytes:
        return await run_in_threadpool(self._get_bytes, name)

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
        return await run_in_threadpool(self.read_range_now, name, offset, length)  # type: ignore[arg-type]

    async def iter_chunks(
        self, name: str, *, offset: int = 0, length: int | None = None, chunk_size: int = 1 << 20
    ) -> AsyncIterator[bytes]:
        path = self._path(name)
        try:
            handle = await run_in_threadpool(open, path, "rb")
        except FileNotFoundError as exc:
            raise BlobNotFoundError(name) from exc
        try:
            handle.seek(offset)
            remaining = length
            while remaining is None or remaining > 0:
                size = chunk_size if remaining is None else min(chunk_size, remaining)
                chunk = await run_in_threadpool(handle.read, size)
                if not chunk:
                    break
                if remaining is not None:
                    remaining -= len(chunk)
                yield chunk
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

        await run_in_threadpool(remove)

    async def list_names(self, prefix: str) -> AsyncIterator[str]:
        def walk() -> list[str]:
            names = []
            for folder, dirs, files in os.walk(self.root):
                dirs[:] = [d for d in dirs if d != ".staging"]
                for file in files:
                    name = os.path.relpath(os.path.join(folder, file), self.root).replace(os.sep, "/")
                    if name.startswith(prefix):
                        names.append(name)
            return sorted(names)

        for name in await run_in_threadpool(walk):
            yield name

    async def close(self) -> None:
        pass  # no connections to release
