"""The cloud blob store: one Azure Blob Storage container (Azurite in development).

Semantics match :mod:`dicomweb.storage.filesystem`:

- *Atomic visibility.* A block blob's content is what its last committed block list
  says; blocks staged by an upload in progress are invisible, so a reader never sees a
  partial file. Small blobs go up in one ``Put Blob``, which is atomic too.
- *Exclusive writes.* ``put_file(exclusive=True)`` sends ``If-None-Match: *`` with the
  final write (``Put Blob`` or ``Put Block List``): of two processes storing the same
  instance, exactly one commits, the other gets :class:`BlobExistsError`.
- *Bounded memory.* Files go up in blocks of :data:`BLOCK_SIZE` with at most
  :data:`UPLOAD_CONCURRENCY` in flight, and downloads stream in chunks, whatever the size.
- *Moves without reading.* :meth:`AzureBlobStore.move` is a server-side copy within the
  account (no byte passes through this process), exclusive at the target, then a delete of
  the source version that was copied.

The async clients (aiohttp) belong to the event loop that made them, and
:meth:`open_reader` runs in worker threads (pydicom is synchronous), so the reader uses
the SDK's synchronous client: one per store, shared by threads (the SDK's clients are
thread-safe). Async clients are made lazily in the running loop, because the app builds
its adapters before any loop exists.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
import os
import tempfile
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, BinaryIO
from urllib.parse import quote

from azure.core import MatchConditions
from azure.core.exceptions import (
    HttpResponseError,
    ResourceExistsError,
    ResourceModifiedError,
    ResourceNotFoundError,
)
from azure.storage.blob import BlobSasPermissions, generate_blob_sas
from azure.storage.blob import ContainerClient as SyncContainerClient
from azure.storage.blob.aio import BlobServiceClient, ContainerClient

from dicomcore.threads import in_thread
from dicomweb.storage.port import BlobChangedError, BlobExistsError, BlobNotFoundError, ImportAreaError, LocalFile
from dicomweb.storage.staging import remove_stale

log = logging.getLogger(__name__)

BLOCK_SIZE = 8 << 20
"""Upload block size, and the largest file sent in a single ``Put Blob``."""
UPLOAD_CONCURRENCY = 4
"""Blocks in flight per upload: memory per upload is about BLOCK_SIZE × this."""
DOWNLOAD_CHUNK = 4 << 20
"""Size of each ranged GET when streaming a blob."""
READ_AHEAD = 256 << 10
"""The synchronous reader fetches at least this much per request: pydicom reads a header
with hundreds of tiny reads, and each uncached one would be a network round trip."""

COPY_POLL_SECONDS = 0.5
"""How often a pending server-side copy is checked (same-account copies usually finish at once)."""
_MOVED_FROM = "dicomwebmovedfrom"
_MOVED_ETAG = "dicomwebmovedetag"
"""Metadata a move writes on its copy: a repeated move recognises its own copy by them."""
_MOVE_ATTEMPTS = 3

_CLIENT_OPTIONS: dict[str, Any] = {
    "max_block_size": BLOCK_SIZE,
    "max_single_put_size": BLOCK_SIZE,
    "max_single_get_size": DOWNLOAD_CHUNK,
    "max_chunk_get_size": DOWNLOAD_CHUNK,
}


class AzureBlobStore:
    """Blobs in ``container``, reached with a connection string or an account URL.

    With ``account_url`` and no connection string, the identity is azure-identity's
    ``DefaultAzureCredential`` (a managed identity in Azure, the developer's login locally).
    """

    def __init__(
        self,
        container: str,
        *,
        connection_string: str = "",
        account_url: str = "",
        staging_dir: Path | None = None,
        client_options: dict[str, Any] | None = None,
    ) -> None:
        if not connection_string and not account_url:
            raise ValueError("the Azure blob store needs a connection string or an account URL")
        self.container = container
        self._connection_string = connection_string
        self._account_url = account_url
        self._options = {**_CLIENT_OPTIONS, **(client_options or {})}
        """The SDK clients' options, plus the caller's (e.g. a ``raw_response_hook`` counting calls)."""
        self.staging_dir = staging_dir or Path(tempfile.gettempdir()) / "dicomweb-staging"
        self.staging_dir.mkdir(parents=True, exist_ok=True)
        self._clients: dict[asyncio.AbstractEventLoop, ContainerClient] = {}
        self._credentials: list[Any] = []
        self._sync: SyncContainerClient | None = None
        self._container_ready = False

    # -- clients ------------------------------------------------------------------------

    async def _client(self) -> ContainerClient:
        loop = asyncio.get_running_loop()
        client = self._clients.get(loop)
        if client is None:
            if self._connection_string:
                client = ContainerClient.from_connection_string(
                    self._connection_string, self.container, **self._options
                )
            else:
                from azure.identity.aio import DefaultAzureCredential

                credential = DefaultAzureCredential()
                self._credentials.append(credential)
                client = ContainerClient(self._account_url, self.container, credential=credential, **self._options)
            self._clients[loop] = client
        if not self._container_ready:
            await self._ensure_container(client)
        return client

    async def _ensure_container(self, client: ContainerClient) -> None:
        try:
            await client.create_container()
        except ResourceExistsError:
            pass
        except HttpResponseError as exc:
            # An identity allowed to read and write blobs may not create containers;
            # in Azure the deployment creates it.
            log.warning("could not create blob container %r (%s); assuming it exists", self.container, exc.message)
        self._container_ready = True

    def _sync_client(self) -> SyncContainerClient:
        if self._sync is None:
            if self._connection_string:
                self._sync = SyncContainerClient.from_connection_string(
                    self._connection_string, self.container, **self._options
                )
            else:
                from azure.identity import DefaultAzureCredential

                self._sync = SyncContainerClient(
                    self._account_url, self.container, credential=DefaultAzureCredential(), **self._options
                )
        return self._sync

    async def clean_staging(self, older_than_seconds: float, *, dry_run: bool = False) -> int:
        return await in_thread(remove_stale, self.staging_dir, older_than_seconds, dry_run)

    async def close(self) -> None:
        """Close this loop's client (each thread with its own loop closes its own)."""
        client = self._clients.pop(asyncio.get_running_loop(), None)
        if client is not None:
            await client.close()
        for finished in [loop for loop in self._clients if loop.is_closed()]:
            del self._clients[finished]  # its loop is gone: nothing left to close it with
        if not self._clients:
            credentials, self._credentials = self._credentials, []
            for credential in credentials:
                await credential.close()
            if self._sync is not None:
                self._sync.close()
                self._sync = None

    # -- writes -------------------------------------------------------------------------

    def new_staging_path(self) -> Path:
        return self.staging_dir / uuid.uuid4().hex

    async def put_file(self, name: str, path: Path, *, exclusive: bool = True) -> None:
        blob = (await self._client()).get_blob_client(name)
        size = path.stat().st_size
        with open(path, "rb") as stream:
            try:
                # overwrite=False makes the SDK send If-None-Match: * with the committing request.
                await blob.upload_blob(
                    stream, length=size, overwrite=not exclusive, max_concurrency=UPLOAD_CONCURRENCY
                )
            except (ResourceExistsError, ResourceModifiedError) as exc:
                raise BlobExistsError(name) from exc
            except HttpResponseError as exc:
                # Two writers staging blocks of one name: the loser's block list may be
                # refused as invalid (the winner's commit dropped its blocks) rather than
                # failing the precondition.
                if exclusive and await blob.exists():
                    raise BlobExistsError(name) from exc
                raise
        path.unlink()

    async def put_files(self, items: list[tuple[str, Path]]) -> list[bool]:
        # Each committed blob is durable already: nothing to flush once for the lot.
        placed = []
        for name, path in items:
            try:
                await self.put_file(name, path, exclusive=True)
            except BlobExistsError:
                placed.append(False)
            else:
                placed.append(True)
        return placed

    async def put_bytes(self, name: str, data: bytes, *, durable: bool = True) -> None:
        blob = (await self._client()).get_blob_client(name)
        await blob.upload_blob(data, length=len(data), overwrite=True)

    # -- reads --------------------------------------------------------------------------

    async def get_many(self, names: list[str]) -> list[bytes | None]:
        limit = asyncio.Semaphore(32)  # concurrent downloads; each is a round trip

        async def one(name: str) -> bytes | None:
            async with limit:
                try:
                    return await self.get_bytes(name)
                except BlobNotFoundError:
                    return None

        return list(await asyncio.gather(*(one(name) for name in names)))

    async def get_bytes(self, name: str) -> bytes:
        blob = (await self._client()).get_blob_client(name)
        try:
            downloader = await blob.download_blob()
            return await downloader.readall()
        except ResourceNotFoundError as exc:
            raise BlobNotFoundError(name) from exc

    def read_range_now(self, name: str, offset: int, length: int) -> bytes | None:
        return None  # every read is a network round trip: never on the event loop

    def version_now(self, name: str) -> str | None:
        return None  # the ETag is a network round trip away; the index tells the incarnation instead

    async def missing_local(self, names: list[str]) -> list[str] | None:
        return None  # a request per blob: the caller does without

    async def read_range(self, name: str, offset: int, length: int) -> bytes:
        if length <= 0:
            return b""
        blob = (await self._client()).get_blob_client(name)
        try:
            downloader = await blob.download_blob(offset=offset, length=length)
            return await downloader.readall()
        except ResourceNotFoundError as exc:
            raise BlobNotFoundError(name) from exc
        except HttpResponseError as exc:
            if exc.status_code == 416:  # the range starts at or past the end
                return b""
            raise

    async def read_range_versioned(
        self, name: str, offset: int, length: int, version: str | None = None
    ) -> tuple[bytes, str]:
        blob = (await self._client()).get_blob_client(name)
        # If-Match on the ranged GET itself: one request reads the bytes and proves the blob
        # is still the version the caller's frame index describes.
        condition: dict[str, Any] = (
            {"etag": version, "match_condition": MatchConditions.IfNotModified} if version is not None else {})
        try:
            downloader = await blob.download_blob(offset=offset, length=max(length, 1), **condition)
            data = await downloader.readall()
        except ResourceNotFoundError as exc:
            raise BlobNotFoundError(name) from exc
        except ResourceModifiedError as exc:
            raise BlobChangedError(name) from exc
        except HttpResponseError as exc:
            # 412: replaced since ``version``; 416: the range lies past its end, so it is not
            # the file the caller's offsets describe either.
            if exc.status_code in (412, 416):
                raise BlobChangedError(name) from exc
            raise
        return data[:length], downloader.properties.etag

    async def iter_chunks(
        self, name: str, *, offset: int = 0, length: int | None = None, chunk_size: int = 1 << 20
    ) -> AsyncIterator[bytes]:
        if length == 0:
            return
        blob = (await self._client()).get_blob_client(name)
        try:
            # The downloader fetches DOWNLOAD_CHUNK per ranged GET, one at a time: memory
            # stays bounded however large the blob is.
            downloader = await blob.download_blob(offset=offset, length=length, max_concurrency=1)
        except ResourceNotFoundError as exc:
            raise BlobNotFoundError(name) from exc
        except HttpResponseError as exc:
            if exc.status_code == 416:
                return
            raise
        async for chunk in downloader.chunks():
            for start in range(0, len(chunk), chunk_size):
                yield chunk[start:start + chunk_size]

    async def open_local(self, names: list[str]) -> list[LocalFile | None] | None:
        return None  # no local files: responses stream the blob (iter_chunks)

    async def size(self, name: str) -> int:
        blob = (await self._client()).get_blob_client(name)
        try:
            return (await blob.get_blob_properties()).size
        except ResourceNotFoundError as exc:
            raise BlobNotFoundError(name) from exc

    def open_reader(self, name: str) -> BinaryIO:
        blob = self._sync_client().get_blob_client(name)
        try:
            properties = blob.get_blob_properties()
        except ResourceNotFoundError as exc:
            raise BlobNotFoundError(name) from exc
        raw = _RangedBlobReader(blob, properties.size, properties.etag)
        return io.BufferedReader(raw, buffer_size=READ_AHEAD)

    async def delete(self, name: str) -> None:
        blob = (await self._client()).get_blob_client(name)
        with contextlib.suppress(ResourceNotFoundError):  # deleting a missing blob is fine
            await blob.delete_blob()

    async def move(self, source: str, target: str) -> None:
        client = await self._client()
        src, dst = client.get_blob_client(source), client.get_blob_client(target)
        for _ in range(_MOVE_ATTEMPTS):
            try:
                etag = (await src.get_blob_properties()).etag
            except ResourceNotFoundError as exc:
                raise BlobNotFoundError(source) from exc
            marker = {_MOVED_FROM: quote(source, safe=""), _MOVED_ETAG: etag.strip('"')}
            if await self._copy_exclusive(src, dst, etag, marker):
                break
            # The source changed between reading its ETag and copying: read it again.
        else:
            raise OSError(f"{source} kept changing while being moved to {target}")
        await _wait_for_copy(dst)
        with contextlib.suppress(ResourceNotFoundError, ResourceModifiedError):
            # Only the version copied: a blob uploaded again under the source name stays.
            await src.delete_blob(etag=etag, match_condition=MatchConditions.IfNotModified)

    async def _copy_exclusive(self, src: Any, dst: Any, etag: str, marker: dict[str, str]) -> bool:
        """Start the copy; ``True`` when ``dst`` is (becoming) this copy of ``src``, ``False``
        when the source changed first. Raises :class:`BlobExistsError` for another blob."""
        try:
            # If-None-Match: * on the target makes the copy exclusive; the source ETag
            # condition copies exactly the version the marker names.
            await dst.start_copy_from_url(
                src.url, metadata=marker, match_condition=MatchConditions.IfMissing,
                source_etag=etag, source_match_condition=MatchConditions.IfNotModified,
            )
            return True
        except ResourceNotFoundError as exc:
            raise BlobNotFoundError(src.blob_name) from exc
        except (ResourceExistsError, ResourceModifiedError) as exc:
            # 409/412: the target exists, or (412) the source changed since its ETag was read.
            try:
                existing = (await dst.get_blob_properties()).metadata
            except ResourceNotFoundError:
                return False
            if all(existing.get(key) == value for key, value in marker.items()):
                return True  # an interrupted or concurrent move of this very source
            raise BlobExistsError(dst.blob_name) from exc

    async def list_names(self, prefix: str) -> AsyncIterator[str]:
        client = await self._client()
        async for name in client.list_blob_names(name_starts_with=prefix or None):
            yield name

    # -- upload sessions ----------------------------------------------------------------

    async def write_only_url(self, name: str, expires: datetime) -> str:
        """A SAS URL for ``name`` with create and write permissions only (no read, list or
        delete): an account-key SAS with a connection string (Azurite), a user-delegation SAS
        signed with the app's identity (managed identity) otherwise."""
        client = await self._client()
        blob = client.get_blob_client(name)
        permission = BlobSasPermissions(create=True, write=True)
        key = getattr(client.credential, "account_key", None)
        if key:
            sas = generate_blob_sas(client.account_name or "", self.container, name, account_key=key,
                                    permission=permission, expiry=expires)
        else:
            service = BlobServiceClient(client.primary_endpoint.rsplit("/", 1)[0], credential=client.credential)
            delegation = await service.get_user_delegation_key(datetime.now(UTC) - timedelta(minutes=5), expires)
            sas = generate_blob_sas(client.account_name or "", self.container, name, user_delegation_key=delegation,
                                    permission=permission, expiry=expires)
        return f"{blob.url}?{sas}"


async def _wait_for_copy(blob: Any) -> None:
    """Return once a server-side copy into ``blob`` has finished (a copy within one account
    usually has by the time it is acknowledged; a large one may still be pending)."""
    while True:
        copy = (await blob.get_blob_properties()).copy
        if copy.status in (None, "success"):
            return
        if copy.status != "pending":
            # Failed or aborted: remove the broken copy so a retried move starts afresh.
            with contextlib.suppress(ResourceNotFoundError):
                await blob.delete_blob()
            raise OSError(f"copying into {blob.blob_name} {copy.status}: {copy.status_description}")
        await asyncio.sleep(COPY_POLL_SECONDS)


class _RangedBlobReader(io.RawIOBase):
    """A seekable raw stream over one blob: each ``readinto`` is one ranged GET.

    Wrapped in :class:`io.BufferedReader`, which turns pydicom's tiny reads into
    :data:`READ_AHEAD`-sized requests and serves seeks inside its buffer without any.
    Reads are pinned to the ETag seen at open: a blob replaced meanwhile fails the read
    instead of mixing two files' bytes.
    """

    def __init__(self, blob: Any, size: int, etag: str) -> None:
        super().__init__()
        self._blob = blob
        self._size = size
        self._etag = etag
        self._position = 0

    @property
    def name(self) -> str:
        """The blob name (pydicom labels a dataset read from a file with it)."""
        return self._blob.blob_name

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._position

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        if whence == os.SEEK_SET:
            position = offset
        elif whence == os.SEEK_CUR:
            position = self._position + offset
        elif whence == os.SEEK_END:
            position = self._size + offset
        else:
            raise ValueError(f"invalid whence {whence}")
        if position < 0:
            raise OSError(f"negative seek position {position}")
        self._position = position
        return position

    def readall(self) -> bytes:
        # The default reads 8 KB at a time: one request each.
        return self._read(self._size - self._position)

    def readinto(self, buffer: Any) -> int:
        data = self._read(len(buffer))
        memoryview(buffer)[:len(data)] = data
        return len(data)

    def _read(self, size: int) -> bytes:
        wanted = min(size, self._size - self._position)
        if wanted <= 0:
            return b""
        downloader = self._blob.download_blob(
            offset=self._position, length=wanted, etag=self._etag, match_condition=MatchConditions.IfNotModified
        )
        data = downloader.readall()
        self._position += len(data)
        return data


class AzureImportArea:
    """A bulk import's source in Azure: a container of the account (``DICOMWEB_IMPORT_CONTAINER``),
    read with the app's identity. Blob names cannot leave their container, so only the
    rule every import area shares (relative, no ``..``) is checked.

    Pages follow Blob Storage's own listing: the cursor is its continuation token.
    """

    def __init__(self, store: AzureBlobStore, *, create: bool = False) -> None:
        self.store = store
        # Only the configured import container is made when missing; a container a request
        # names is read as it is (a missing one fails the operation, nothing is created).
        self.store._container_ready = not create

    def check_prefix(self, prefix: str) -> None:
        _check_relative(prefix, "prefix")

    async def count(self, prefix: str) -> int:
        self.check_prefix(prefix)
        return sum([1 async for _ in self.store.list_names(prefix)])

    async def list_page(self, prefix: str, cursor: str | None, limit: int) -> tuple[list[str], str | None]:
        self.check_prefix(prefix)
        client = await self.store._client()
        pages: Any = client.list_blobs(name_starts_with=prefix, results_per_page=limit).by_page(
            continuation_token=cursor)
        names: list[str] = []
        async for page in pages:
            names = [blob.name async for blob in page]
            break
        return names, (pages.continuation_token or None)

    def open_reader(self, name: str) -> BinaryIO:
        _check_relative(name, "file name")
        return self.store.open_reader(name)

    async def copy_to(self, name: str, path: Path) -> None:
        # Streamed through this process (bounded memory); a server-side copy into the
        # instance container would save the round trip (see docs/operations.md).
        with open(path, "wb") as out:
            async for chunk in self.store.iter_chunks(name, chunk_size=DOWNLOAD_CHUNK):
                out.write(chunk)

    async def delete(self, name: str) -> None:
        await self.store.delete(name)

    async def delete_many(self, names: list[str]) -> None:
        limit = asyncio.Semaphore(32)  # concurrent deletes; each is a round trip

        async def one(name: str) -> None:
            async with limit:
                await self.delete(name)

        await asyncio.gather(*(one(name) for name in names))

    async def close(self) -> None:
        await self.store.close()


def _check_relative(name: str, what: str) -> None:
    if not name:
        raise ImportAreaError(f"the {what} is empty")
    if name.startswith(("/", "\\")):
        raise ImportAreaError(f"the {what} must be relative to the import area, not absolute")
    if ".." in name.replace("\\", "/").split("/"):
        raise ImportAreaError(f"the {what} must not contain '..'")
