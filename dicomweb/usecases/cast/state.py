"""Where the sync keeps its position and failures: one small JSON document, replaced whole.

``JsonFileState`` for ``dicomweb cast --state FILE``; ``BlobState`` for the sync inside the
server and the Azure function (the blob store is durable in both modes, and the event
publisher keeps its cursor the same way).
"""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path

from dicomweb.storage.port import BlobNotFoundError, BlobStore
from dicomweb.usecases.cast.ports import CastProgress

STATE_BLOB = "state/dicomcast.json"


class JsonFileState:
    def __init__(self, path: Path) -> None:
        self.path = path

    async def load(self) -> CastProgress:
        try:
            return CastProgress.from_json(json.loads(await asyncio.to_thread(self.path.read_text)))
        except FileNotFoundError:
            return CastProgress(0, [])

    async def save(self, progress: CastProgress) -> None:
        await asyncio.to_thread(self._write, json.dumps(progress.to_json(), indent=1))

    def _write(self, text: str) -> None:
        staged = self.path.with_name(self.path.name + ".tmp")
        with open(staged, "w") as out:
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
        os.replace(staged, self.path)  # atomic: a crash leaves the old state or the new one


class BlobState:
    def __init__(self, blobs: BlobStore, name: str = STATE_BLOB) -> None:
        self.blobs = blobs
        self.name = name

    async def load(self) -> CastProgress:
        try:
            return CastProgress.from_json(json.loads(await self.blobs.get_bytes(self.name)))
        except BlobNotFoundError:
            return CastProgress(0, [])

    async def save(self, progress: CastProgress) -> None:
        await self.blobs.put_bytes(self.name, json.dumps(progress.to_json()).encode(), durable=True)
