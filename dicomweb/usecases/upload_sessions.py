"""Upload sessions: a URL a client sends one large file to, outside any STOW request.

A Functions HTTP request is capped near 100 MB and buffered whole, so a whole-slide image
cannot go through STOW in Azure. ``POST /v1/uploads`` hands out a URL for one new blob
under ``incoming/uploads/`` instead; once the file is there, its BlobCreated event imports
it like any dropped file (:mod:`dicomweb.usecases.blob_created`).

- Azure: a SAS URL straight to Blob Storage, create and write only, expiring after
  ``DICOMWEB_UPLOAD_EXPIRY_SECONDS`` (the client uploads blocks with azcopy, the SDK or
  plain ``PUT``s; the bytes never pass through the app).
- Embedded: a URL on the server itself (``PUT /v1/uploads/{token}``), the token an HMAC of
  the blob name and the expiry under a key kept in the data folder; the body is streamed to
  disk with STOW's size limit and placed in ``incoming/`` exclusively (one upload per URL).
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import os
import secrets
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from dicomcore import layout
from dicomweb.storage.port import BlobStore, UploadUrlSigner

UPLOADS_PREFIX = layout.INCOMING_PREFIX + "uploads/"


class InvalidUploadToken(ValueError):
    """The upload URL is not one this server issued, or it has expired."""


@dataclass(frozen=True)
class UploadSession:
    url: str
    expires_on: datetime


def _iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


class UploadSessions:
    def __init__(self, signer: UploadUrlSigner | None, key_file: Path, expiry_seconds: int) -> None:
        self.signer = signer
        self.key_file = key_file
        self.expiry_seconds = expiry_seconds
        self._key: bytes | None = None

    async def new(self, service_root: str) -> UploadSession:
        expires = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=self.expiry_seconds)
        name = f"{UPLOADS_PREFIX}{uuid.uuid4().hex}.dcm"
        if self.signer is not None:
            return UploadSession(await self.signer.write_only_url(name, expires), expires)
        return UploadSession(f"{service_root}/uploads/{self._token(name, expires)}", expires)

    def blob_name(self, token: str) -> str:
        """The blob an embedded upload URL's token names; raises :class:`InvalidUploadToken`."""
        payload, _, signature = token.partition(".")
        try:
            name, _, expiry = base64.urlsafe_b64decode(payload.encode() + b"==").decode().partition("|")
        except ValueError:
            raise InvalidUploadToken("the upload URL is malformed") from None
        if not hmac.compare_digest(signature, self._sign(payload)) or not name.startswith(UPLOADS_PREFIX):
            raise InvalidUploadToken("the upload URL was not issued by this server")
        if datetime.now(UTC) > datetime.strptime(expiry, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC):
            raise InvalidUploadToken(f"the upload URL expired at {expiry}")
        return name

    def _token(self, name: str, expires: datetime) -> str:
        payload = base64.urlsafe_b64encode(f"{name}|{_iso(expires)}".encode()).decode().rstrip("=")
        return f"{payload}.{self._sign(payload)}"

    def _sign(self, payload: str) -> str:
        digest = hmac.new(self._signing_key(), payload.encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).decode().rstrip("=")

    def _signing_key(self) -> bytes:
        """A random key made once per data folder (file mode 0600), so URLs survive restarts."""
        if self._key is None:
            if not self.key_file.exists():
                self.key_file.parent.mkdir(parents=True, exist_ok=True)
                with contextlib.suppress(FileExistsError):  # another process made it first
                    descriptor = os.open(self.key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                    with os.fdopen(descriptor, "wb") as out:
                        out.write(secrets.token_bytes(32))
            self._key = self.key_file.read_bytes()
        return self._key


async def claim_upload(blobs: BlobStore, name: str) -> None:
    """Mark an embedded upload URL used, exclusively: the file it names is moved away once
    imported, so its name alone cannot tell a second upload to the same URL. Raises
    :class:`~dicomweb.storage.port.BlobExistsError` when it was used already."""
    marker = blobs.new_staging_path()
    marker.write_bytes(b"")
    try:
        await blobs.put_file(f"state/uploads/{name.rsplit('/', 1)[-1]}.used", marker, exclusive=True)
    finally:
        marker.unlink(missing_ok=True)
