"""The embedded blob store: a local folder.

Durability: a blob is written under a temporary name, fsynced, then linked (exclusive)
or renamed (replace) into place, and the folder is fsynced; a reader never sees a partial
file and a crash never leaves one under a real name.

Untrusted files: the drop zone (``incoming/``) holds whatever a user put there. Names are
looked at with ``lstat`` and files opened with ``O_NOFOLLOW | O_NONBLOCK``, so a symbolic
link is never followed and a FIFO never blocks; anything but a regular file raises
:class:`NotRegularFileError`. A move copies the bytes (a reflink where the filesystem can,
else an in-kernel copy) rather than hard-linking them, so the writer of a dropped file,
who may still hold it open, cannot change the stored instance afterwards.

Blob-created events: Blob Storage announces every new blob through Event Grid; this store
does the same in-process through ``on_blob_created`` (called with the name and size after
each write or move), so the embedded server feeds the same indexing handler.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import fcntl
import os
import shutil
import stat
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import BinaryIO

from dicomcore import layout
from dicomcore.threads import in_thread
from dicomweb.storage.new_files import NameTakenError, write_staged
from dicomweb.storage.port import (
    BlobChangedError,
    BlobChangingError,
    BlobExistsError,
    BlobNotFoundError,
    LocalFile,
    NotRegularFileError,
)
from dicomweb.storage.staging import remove_stale

FICLONE = 0x40049409
"""Linux ioctl: make the target a copy-on-write clone of the source (btrfs, XFS, ...).
Python's standard library has no reflink call, hence the ioctl by hand; where it fails the
bytes are copied in the kernel (``os.sendfile`` via shutil)."""

_LIBC = ctypes.CDLL(None, use_errno=True)
"""The C library, for ``syncfs`` (see :func:`sync_filesystem`)."""
SOURCE_MARK = "user.dicomweb.source"
"""Extended attribute naming the dropped file a stored copy was made from, so a second
delivery of the same move can tell its own finished copy from another file."""

_KINDS = {stat.S_IFLNK: "a symbolic link", stat.S_IFIFO: "a FIFO (named pipe)", stat.S_IFCHR: "a character device",
          stat.S_IFBLK: "a block device", stat.S_IFSOCK: "a socket", stat.S_IFDIR: "a folder"}


def _kind(mode: int) -> str:
    return _KINDS.get(stat.S_IFMT(mode), "not a regular file")


def _checked_name(name: str) -> str:
    """``name``, if it stays inside the store (no absolute path, no ``..``)."""
    if name.startswith("/") or ".." in name.split("/"):
        raise ValueError(f"invalid blob name {name!r}")
    return name


def _open_regular(path: Path) -> int:
    """A read-only descriptor of the regular file ``path``: a symbolic link is not followed
    and a FIFO or device does not block (or act) on open."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except FileNotFoundError:
        raise
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise NotRegularFileError("a symbolic link: links are not followed") from exc
        raise
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        raise NotRegularFileError(f"{_kind(mode)}: only regular files are read")
    return fd


def _version(info: os.stat_result) -> str:
    # A replaced file is a new inode (files are linked or renamed into place, never rewritten);
    # a file still being written changes size or time.
    return f"{info.st_ino}:{info.st_size}:{info.st_mtime_ns}:{info.st_ctime_ns}"


def source_identity(info: os.stat_result) -> str:
    return f"{info.st_dev}:{info.st_ino}:{info.st_size}:{info.st_mtime_ns}"


def _copy_into(source_fd: int, target: Path) -> None:
    with open(target, "wb") as out:
        try:
            fcntl.ioctl(out.fileno(), FICLONE, source_fd)
        except OSError:  # not on one filesystem, or it cannot clone: copy the bytes
            with os.fdopen(os.dup(source_fd), "rb") as src:
                src.seek(0)
                shutil.copyfileobj(src, out, 1 << 20)
        out.flush()
        os.fsync(out.fileno())


def _mark(path: Path) -> str | None:
    try:
        return os.getxattr(path, SOURCE_MARK, follow_symlinks=False).decode()
    except OSError:
        return None


def sync_filesystem(path: Path) -> None:
    """Flush every written file and folder of the filesystem holding ``path`` to disk.

    ``syncfs(2)`` through ctypes: Python's ``os`` has ``sync`` (every filesystem) but no
    ``syncfs``; where libc lacks it, ``os.sync``.
    """
    syncfs = getattr(_LIBC, "syncfs", None)
    if syncfs is None:
        os.sync()
        return
    fd = os.open(path, os.O_RDONLY)
    try:
        if syncfs(fd) != 0:
            code = ctypes.get_errno()
            raise OSError(code, f"syncfs failed: {os.strerror(code)}")
    finally:
        os.close(fd)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


BlobCreatedHook = Callable[[str, int], None]
"""Called on the event loop with a new blob's name and size."""


class FilesystemBlobStore:
    """Blobs as files under ``root``; names map to relative paths."""

    def __init__(self, root: Path, on_blob_created: BlobCreatedHook | None = None) -> None:
        self.root = root
        self.staging_dir = root / ".staging"
        self.staging_dir.mkdir(parents=True, exist_ok=True)
        # Patient data: the store is the owner's alone (the server also sets umask 077).
        os.chmod(root, 0o700)
        self.on_blob_created = on_blob_created

    def _announce(self, name: str, size: int) -> None:
        if self.on_blob_created is not None:
            self.on_blob_created(name, size)

    def _path(self, name: str) -> Path:
        return self.root / _checked_name(name)

    def new_staging_path(self) -> Path:
        return self.staging_dir / uuid.uuid4().hex

    # -- writes -------------------------------------------------------------------------

    def _put_file(self, name: str, path: Path, exclusive: bool, durable: bool = True) -> None:
        target = self._path(name)
        target.parent.mkdir(parents=True, exist_ok=True)
        os.chmod(path, 0o600)
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

    async def put_files(self, items: list[tuple[str, Path]]) -> list[bool]:
        sizes = [path.stat().st_size for _, path in items]
        placed = await in_thread(self._put_files, items)
        for (name, _), size, done in zip(items, sizes, placed, strict=True):
            if done:
                self._announce(name, size)
        return placed

    def _put_files(self, items: list[tuple[str, Path]]) -> list[bool]:
        # Two flushes of the whole filesystem instead of two fsyncs per file (~8 ms each
        # here, docs/operations.md): the first makes the staged bytes durable before any
        # takes its real name, so a crash still never leaves a partial file under one; the
        # second makes the names durable.
        sync_filesystem(self.staging_dir)
        placed = []
        for name, path in items:
            try:
                self._put_file(name, path, exclusive=True, durable=False)
            except BlobExistsError:
                placed.append(False)
            else:
                placed.append(True)
        sync_filesystem(self.root)
        return placed

    def put_file_blocking(self, name: str, path: Path, *, exclusive: bool = True) -> None:
        """:meth:`put_file` in the calling thread (``storage.port.BlockingBlobWrites``)."""
        size = path.stat().st_size
        self._put_file(name, path, exclusive)
        self._announce(name, size)

    def _put_bytes(self, name: str, data: bytes, durable: bool) -> None:
        staged = self.new_staging_path()
        with open(staged, "wb") as out:
            out.write(data)
        self._put_file(name, staged, exclusive=False, durable=durable)

    async def put_bytes(self, name: str, data: bytes, *, durable: bool = True) -> None:
        await in_thread(self._put_bytes, name, data, durable)
        self._announce(name, len(data))

    def put_bytes_blocking(self, name: str, data: bytes, *, durable: bool = True) -> None:
        """:meth:`put_bytes` in the calling thread (``storage.port.BlockingBlobWrites``)."""
        self._put_bytes(name, data, durable)
        self._announce(name, len(data))

    def put_new_bytes_blocking(self, name: str, data: bytes) -> None:
        """See ``storage.port.BlockingBlobWrites``: the bytes are written once, to a staging
        file, fsynced, linked into place exclusively, the folder fsynced
        (``storage/new_files.py``)."""
        try:
            write_staged(self.new_staging_path(), self._path(name), data)
        except NameTakenError as exc:
            raise BlobExistsError(name) from exc
        self._announce(name, len(data))

    def _move(self, source: str, target: str) -> int:
        src, dst = self._path(source), self._path(target)
        try:
            info = os.lstat(src)
        except FileNotFoundError as exc:
            raise BlobNotFoundError(source) from exc
        dst.parent.mkdir(parents=True, exist_ok=True)
        if stat.S_ISREG(info.st_mode):
            self._copy_in(src, dst, source, target)
        else:
            self._move_entry(src, dst, info, source, target)
        _fsync_dir(dst.parent)
        size = dst.lstat().st_size
        with contextlib.suppress(FileNotFoundError):
            now = os.lstat(src)
            if (now.st_dev, now.st_ino) == (info.st_dev, info.st_ino):  # one dropped again meanwhile stays
                src.unlink()
                self._prune_empty_folder(src.parent)
        return size

    def _copy_in(self, src: Path, dst: Path, source: str, target: str) -> None:
        """Copy the regular file ``src`` to ``dst`` (exclusive), marked with its identity."""
        try:
            fd = _open_regular(src)
        except FileNotFoundError as exc:
            raise BlobNotFoundError(source) from exc
        staged = self.new_staging_path()
        try:
            before = os.fstat(fd)
            _copy_into(fd, staged)
            if source_identity(os.fstat(fd)) != source_identity(before):
                raise BlobChangingError(f"{source!a} changed while it was copied")
            with contextlib.suppress(OSError):  # a filesystem without user xattrs: no idempotent retry
                os.setxattr(staged, SOURCE_MARK, source_identity(before).encode())
            try:
                os.link(staged, dst)  # atomic and exclusive
            except FileExistsError as exc:
                if _mark(dst) != source_identity(before):
                    raise BlobExistsError(target) from exc
                # else: an interrupted or concurrent move of this very file; finish it
        finally:
            os.close(fd)
            staged.unlink(missing_ok=True)

    def _move_entry(self, src: Path, dst: Path, info: os.stat_result, source: str, target: str) -> None:
        """Move a special file (link, FIFO, device) aside without opening it; never to an
        instance name."""
        if layout.key_from_name(target) is not None:
            raise NotRegularFileError(f"{_kind(info.st_mode)}: only regular files are stored")
        try:
            os.link(src, dst, follow_symlinks=False)
        except FileNotFoundError as exc:
            raise BlobNotFoundError(source) from exc
        except FileExistsError as exc:
            if os.lstat(dst).st_ino != info.st_ino:
                raise BlobExistsError(target) from exc

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
            fd = _open_regular(self._path(name))
        except (FileNotFoundError, NotRegularFileError) as exc:  # a link left by an old version: not served
            raise BlobNotFoundError(name) from exc
        try:
            return os.pread(fd, length, offset)
        finally:
            os.close(fd)

    def version_now(self, name: str) -> str | None:
        try:
            info = os.lstat(self._path(name))
        except FileNotFoundError as exc:
            raise BlobNotFoundError(name) from exc
        return _version(info)

    async def read_range_versioned(
        self, name: str, offset: int, length: int, version: str | None = None
    ) -> tuple[bytes, str]:
        if length <= 4 << 20:  # a tile: cheaper on the event loop than a thread hop (as read_range)
            return self._read_versioned(name, offset, length, version)
        return await in_thread(self._read_versioned, name, offset, length, version)

    def _read_versioned(self, name: str, offset: int, length: int, version: str | None) -> tuple[bytes, str]:
        try:
            fd = _open_regular(self._path(name))
        except (FileNotFoundError, NotRegularFileError) as exc:
            raise BlobNotFoundError(name) from exc
        try:
            # The version of the very file the descriptor holds: a file replaced between a
            # check and the read cannot slip through.
            found = _version(os.fstat(fd))
            if version is not None and found != version:
                raise BlobChangedError(name)
            return os.pread(fd, length, offset), found
        finally:
            os.close(fd)

    async def missing_local(self, names: list[str]) -> list[str]:
        def missing() -> list[str]:
            # Text paths, not Path objects: a series' metadata checks a thousand files at
            # once, and building a Path for each was more than half of the check's CPU.
            root = os.fspath(self.root)
            return [name for name in names if not os.path.lexists(f"{root}/{_checked_name(name)}")]

        return await in_thread(missing)

    async def read_range(self, name: str, offset: int, length: int) -> bytes:
        if length <= 4 << 20:
            return self.read_range_now(name, offset, length)  # type: ignore[return-value]
        return await in_thread(self.read_range_now, name, offset, length)  # type: ignore[arg-type]

    async def iter_chunks(
        self, name: str, *, offset: int = 0, length: int | None = None, chunk_size: int = 1 << 20
    ) -> AsyncIterator[bytes]:
        first = chunk_size if length is None else min(chunk_size, length)
        try:
            # Opening and the first read in one worker trip: a file smaller than a chunk (an
            # instance of a study retrieve) costs one trip, not three (docs/performance.md).
            handle, chunk = await in_thread(self._open_and_read, name, offset, first)
        except NotRegularFileError as exc:  # a link left by an old version: not served
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
            return self._path(name).lstat().st_size  # of a link itself: links are not followed
        except FileNotFoundError as exc:
            raise BlobNotFoundError(name) from exc

    async def open_local(self, names: list[str]) -> list[LocalFile | None]:
        return await in_thread(self._open_local_many, names)

    def _open_local_many(self, names: list[str]) -> list[LocalFile | None]:
        opened: list[LocalFile | None] = []
        try:
            for name in names:
                opened.append(self._open_local(name))
        except BaseException:
            for local in opened:
                if local is not None:
                    local.handle.close()
            raise
        return opened

    def _open_local(self, name: str) -> LocalFile | None:
        try:
            # Unbuffered: the bytes are sent by the kernel, never read through this object.
            handle = os.fdopen(_open_regular(self._path(name)), "rb", buffering=0)
        except (FileNotFoundError, NotRegularFileError):  # a link left by an old version: not served
            return None
        try:
            return LocalFile(handle, os.fstat(handle.fileno()).st_size)
        except BaseException:
            handle.close()
            raise

    def _open_and_read(self, name: str, offset: int, size: int) -> tuple[BinaryIO, bytes]:
        handle = self.open_reader(name)
        try:
            handle.seek(offset)
            return handle, handle.read(size)
        except BaseException:
            handle.close()
            raise

    def open_reader(self, name: str) -> BinaryIO:
        try:
            return os.fdopen(_open_regular(self._path(name)), "rb")
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
