"""Putting files into the import area a bulk import reads (past the server), and waiting
for an operation to end over HTTP."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from typing import Any

from azure.core.exceptions import ResourceExistsError
from azure.storage.blob import ContainerClient

from dicomweb.settings import Settings


def put_import_files(settings: Settings, files: dict[str, bytes]) -> None:
    """Write ``files`` (name → bytes) into the import folder or the import container."""
    if settings.blob_store == "filesystem":
        for name, data in files.items():
            path = settings.import_path / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
        return
    with ContainerClient.from_connection_string(settings.blob_connection_string, settings.import_container) as box:
        with contextlib.suppress(ResourceExistsError):
            box.create_container()
        for name, data in files.items():
            box.upload_blob(name, data, overwrite=True)


def import_names(settings: Settings, prefix: str) -> list[str]:
    """What is left in the import area under ``prefix``."""
    if settings.blob_store == "filesystem":
        root = settings.import_path
        return sorted(p.relative_to(root).as_posix() for p in (root / prefix).rglob("*") if p.is_file())
    with ContainerClient.from_connection_string(settings.blob_connection_string, settings.import_container) as box:
        return sorted(box.list_blob_names(name_starts_with=prefix))


def wait_for_operation(get: Callable[[str], Any], href: str, timeout: float = 60) -> dict[str, Any]:
    """Poll ``href`` with ``get`` (an httpx-like client's ``get``) until the operation is terminal (200)."""
    deadline = time.monotonic() + timeout
    while True:
        response = get(href)
        if response.status_code == 200:
            body: dict[str, Any] = response.json()
            return body
        assert response.status_code == 202, response.text
        assert response.headers["Location"].endswith(href.rsplit("/", 1)[-1])
        if time.monotonic() > deadline:
            raise TimeoutError(f"operation {href} still {response.json()['status']} after {timeout} s")
        time.sleep(0.1)
