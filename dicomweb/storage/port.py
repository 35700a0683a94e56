"""The blob store port: the narrow interface every file store adapter implements.

Blob names are opaque keys chosen by :mod:`dicomcore.layout`; they never carry
patient data. Writes of instance files are exclusive (a second write of the same name
fails with :class:`BlobExistsError`), which is how a re-sent instance is detected
atomically, even between several server processes.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import BinaryIO, Protocol, runtime_checkable


class BlobNotFoundError(LookupError):
    """The named blob does not exist."""


class BlobExistsError(FileExistsError):
    """An exclusive write found the name already taken."""


class NotRegularFileError(ValueError):
    """The name is not a regular file (a symbolic link, FIFO, device or socket dropped into a
    local folder): it is never opened, and never stored as an instance. The message says what
    it is. Blob Storage has only blobs, so only the local store raises it."""


class BlobChangingError(RuntimeError):
    """The source of a move changed while it was copied (its writer is not done): try later."""


class BlobChangedError(RuntimeError):
    """A conditional read found the blob replaced since the version it named."""


@dataclass(frozen=True)
class LocalFile:
    """A blob open as a local file, for the operating system to send (``os.sendfile``)."""

    handle: BinaryIO
    size: int
    """Bytes in the file, as it is open (a file replaced under its name keeps these bytes)."""


class BlobStore(Protocol):
    """Files by name. All methods are safe to call concurrently."""

    def new_staging_path(self) -> Path:
        """A fresh local path for spooling an upload before :meth:`put_file` (on the
        store's own filesystem where the store is local, so the final move is a link)."""
        ...

    async def put_file(self, name: str, path: Path, *, exclusive: bool = True) -> None:
        """Store the local file ``path`` under ``name`` and remove ``path``.

        Readers never see a partly written blob. With ``exclusive``, raises
        :class:`BlobExistsError` if ``name`` exists (and leaves ``path`` in place).
        """
        ...

    async def put_files(self, items: list[tuple[str, Path]]) -> list[bool]:
        """:meth:`put_file` (exclusive) for many files, durable when it returns, with one
        flush to disk for them all where the store can (bulk import: ``usecases/store_batch.py``).

        Per item, ``False`` when its name was taken (its file is then left in place).
        """
        ...

    async def put_bytes(self, name: str, data: bytes, *, durable: bool = True) -> None:
        """Store (or replace) a small blob atomically. ``durable=False`` may skip flushing
        to disk (for derived data that is rebuilt if a crash loses it)."""
        ...

    async def get_bytes(self, name: str) -> bytes:
        """The whole blob. Raises :class:`BlobNotFoundError`."""
        ...

    async def get_many(self, names: list[str]) -> list[bytes | None]:
        """Several small blobs at once (``None`` for a missing one): a series' metadata is
        a thousand small files, and one call lets the store batch them."""
        ...

    async def read_range(self, name: str, offset: int, length: int) -> bytes:
        """``length`` bytes from ``offset`` (fewer only at the end of the blob)."""
        ...

    def read_range_now(self, name: str, offset: int, length: int) -> bytes | None:
        """The same read done without leaving the event loop, or ``None`` when this
        store cannot do it cheaply (a local file read of a tile is ~20 µs, far less
        than a thread hop; a network store returns ``None``)."""
        ...

    def version_now(self, name: str) -> str | None:
        """A tag that changes whenever the blob is replaced, if this store can tell without
        leaving the event loop (a local ``stat``); ``None`` otherwise. Raises
        :class:`BlobNotFoundError` for a missing blob when it can tell."""
        ...

    async def missing_local(self, names: list[str]) -> list[str] | None:
        """Those of ``names`` that do not exist, where the store can tell cheaply (one local
        ``stat`` each, in one batch); ``None`` where it would cost a request per name (Blob
        Storage)."""
        ...

    def iter_chunks(
        self, name: str, *, offset: int = 0, length: int | None = None, chunk_size: int = 1 << 20
    ) -> AsyncIterator[bytes]:
        """The blob (or a range of it) in chunks, for streaming responses."""
        ...

    async def read_range_versioned(
        self, name: str, offset: int, length: int, version: str | None = None
    ) -> tuple[bytes, str]:
        """:meth:`read_range`, and the blob's version: a tag that changes whenever the blob
        is replaced (Blob Storage's ETag; a local file's inode, size and times).

        With ``version``, the read is conditional, in the same request: raises
        :class:`BlobChangedError` when the blob is no longer that version (so a cached
        frame index is never applied to another file). A missing blob raises
        :class:`BlobNotFoundError`, or with ``version`` possibly :class:`BlobChangedError`
        (HTTP's If-Match fails on a missing resource with 412: RFC 9110 §13.1.1).
        """
        ...

    async def size(self, name: str) -> int:
        """Size in bytes. Raises :class:`BlobNotFoundError`."""
        ...

    async def open_local(self, names: list[str]) -> list[LocalFile | None] | None:
        """The blobs open as local files with their sizes (``None`` for one that does not
        exist), opened in one batch, so a response can send them without copying them
        through Python; ``None`` when the store keeps no local files (Blob Storage: use
        :meth:`iter_chunks`). The caller closes them."""
        ...

    def open_reader(self, name: str) -> BinaryIO:
        """A seekable, synchronous reader (for pydicom); blocking, use in a thread."""
        ...

    async def delete(self, name: str) -> None:
        """Remove a blob; a missing one is not an error."""
        ...

    async def move(self, source: str, target: str) -> None:
        """Give ``source``'s bytes the name ``target`` and remove ``source``, without the
        bytes passing through this process (a link on a filesystem, a server-side copy in
        Blob Storage), so moving a multi-gigabyte file costs no memory.

        Exclusive at the target: raises :class:`BlobExistsError` (and leaves ``source``)
        when ``target`` holds another blob. Idempotent: when ``target`` already holds this
        very ``source`` (a move interrupted, or running concurrently), the move is finished
        and returns normally. Raises :class:`BlobNotFoundError` when ``source`` does not
        exist (already moved). ``source`` is removed only if it is still the blob that was
        moved: one written again under its name meanwhile is kept.

        The target never shares storage with the source: on disk the bytes are copied (or
        reflinked), so whoever wrote the source cannot change the stored copy afterwards.
        A source that is not a regular file (:class:`NotRegularFileError`) may only be
        moved aside, never to an instance name; one that changes while it is copied raises
        :class:`BlobChangingError`.
        """
        ...

    def list_names(self, prefix: str) -> AsyncIterator[str]:
        """Names starting with ``prefix`` (for repair and import scans)."""
        ...

    async def clean_staging(self, older_than_seconds: float, *, dry_run: bool = False) -> int:
        """Remove spooled uploads a crash left in the staging folder, older than the grace
        period; how many (with ``dry_run``, only count them)."""
        ...

    async def close(self) -> None:
        """Release connections (a network store); called once when the app stops."""
        ...


@runtime_checkable
class BlockingBlobWrites(Protocol):
    """Writes that a store on this machine's disk can also make from the calling thread.

    The store use case then places a STOW's file, writes its sidecars and commits its index
    record in one worker-thread trip instead of four (each trip costs more CPU under the GIL
    than the work of a small step: docs/performance.md). A network store has no such
    methods and is written through :class:`BlobStore`'s coroutines. Same contracts as
    :meth:`BlobStore.put_file` and :meth:`BlobStore.put_bytes`; blocking.
    """

    def put_file_blocking(self, name: str, path: Path, *, exclusive: bool = True) -> None:
        ...

    def put_bytes_blocking(self, name: str, data: bytes, *, durable: bool = True) -> None:
        ...

    def put_new_bytes_blocking(self, name: str, data: bytes) -> None:
        """Store ``data`` under ``name``, durably (on disk before it returns) and exclusively:
        raises :class:`BlobExistsError` when ``name`` is taken (the first copy wins). A STOW
        part received in memory is written this way, once."""
        ...


class ImportAreaError(ValueError):
    """A name or prefix that would reach outside the import area; the message says why."""


class ImportArea(Protocol):
    """Files a bulk import reads, left in place unless the import is asked to delete them:
    ``DATA/import/`` on the embedded store, a container of the account in Azure.

    Names are ``/``-separated and relative to the area; nothing outside it can be named.
    """

    def check_prefix(self, prefix: str) -> None:
        """Raise :class:`ImportAreaError` when ``prefix`` could name files outside the area."""
        ...

    async def count(self, prefix: str) -> int:
        """How many files start with ``prefix`` (for percentComplete)."""
        ...

    async def list_page(self, prefix: str, cursor: str | None, limit: int) -> tuple[list[str], str | None]:
        """Up to ``limit`` names starting with ``prefix`` after ``cursor`` (``None``: from the
        start), in a stable order, and the cursor of the next page (``None``: no more)."""
        ...

    def open_reader(self, name: str) -> BinaryIO:
        """A seekable, synchronous reader (for pydicom); blocking, use in a thread. Raises
        :class:`BlobNotFoundError`, or :class:`ImportAreaError` for a name leading outside."""
        ...

    async def copy_to(self, name: str, path: Path) -> None:
        """Copy the file to the local ``path`` (the source stays)."""
        ...

    async def delete(self, name: str) -> None:
        """Remove a file; a missing one is not an error."""
        ...

    async def delete_many(self, names: list[str]) -> None:
        """Remove files (a chunk's sources, in one call); missing ones are not an error."""
        ...

    async def close(self) -> None:
        ...


class UploadUrlSigner(Protocol):
    """Signs URLs a client uploads one blob to directly (Blob Storage's SAS)."""

    async def write_only_url(self, name: str, expires: datetime) -> str:
        """A URL allowing only the creation and writing of the blob ``name`` until ``expires``."""
        ...
