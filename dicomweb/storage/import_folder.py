"""The embedded store's import area: a local folder (``DATA/import/``, or ``DICOMWEB_IMPORT_DIR``).

Nothing outside the folder can be named: a prefix or name that is absolute or has a
``..`` part is refused, directories are walked without following symbolic links, and a
file that is a symbolic link is read only if it resolves inside the folder (one leading
outside is refused, and the import lists it as failed).
"""

from __future__ import annotations

import bisect
import os
import shutil
from pathlib import Path
from typing import BinaryIO

from dicomcore.threads import in_thread
from dicomweb.storage.port import BlobNotFoundError, ImportAreaError


def check_relative(name: str, what: str) -> None:
    """Refuse names that are empty, absolute or climb out with ``..`` (shared rule for prefixes and names)."""
    if not name:
        raise ImportAreaError(f"the {what} is empty")
    if name.startswith(("/", "\\")) or (len(name) > 1 and name[1] == ":"):
        raise ImportAreaError(f"the {what} must be relative to the import area, not absolute")
    if ".." in name.replace("\\", "/").split("/"):
        raise ImportAreaError(f"the {what} must not contain '..'")
    if "\x00" in name:
        raise ImportAreaError(f"the {what} contains a NUL character")


class FolderImportArea:
    """Files under ``root``; names are their paths relative to it."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def _inside(self, path: Path) -> bool:
        return path.resolve().is_relative_to(self.root.resolve())

    def _path(self, name: str) -> Path:
        check_relative(name, "file name")
        path = self.root / name
        if path.is_symlink() and not self._inside(path):
            raise ImportAreaError("the file is a symbolic link leading outside the import area")
        return path

    def check_prefix(self, prefix: str) -> None:
        check_relative(prefix, "prefix")
        folder = self.root / prefix.rpartition("/")[0]
        if folder.exists() and not self._inside(folder):
            raise ImportAreaError("the prefix leads outside the import area (through a symbolic link)")

    def _names(self, prefix: str) -> list[str]:
        self.check_prefix(prefix)
        start = self.root / prefix.rpartition("/")[0]
        names = []
        # followlinks=False: a linked directory is not entered, whatever it points to.
        for folder, dirs, files in os.walk(start, followlinks=False):
            dirs[:] = [d for d in dirs if not d.startswith(".")]
            for file in files:
                if file.startswith("."):
                    continue  # a copy tool's temporary file
                name = os.path.relpath(os.path.join(folder, file), self.root).replace(os.sep, "/")
                if name.startswith(prefix):
                    names.append(name)
        return sorted(names)

    async def count(self, prefix: str) -> int:
        return len(await in_thread(self._names, prefix))

    async def list_page(self, prefix: str, cursor: str | None, limit: int) -> tuple[list[str], str | None]:
        # The cursor is the last name returned: the walk is sorted, so the next page starts
        # after it, and a file added meanwhile before it is simply not part of this import.
        names = await in_thread(self._names, prefix)
        start = 0 if cursor is None else bisect.bisect_right(names, cursor)
        page = names[start:start + limit]
        more = start + limit < len(names)
        return page, (page[-1] if page and more else None)

    def open_reader(self, name: str) -> BinaryIO:
        try:
            return open(self._path(name), "rb")
        except (FileNotFoundError, IsADirectoryError) as exc:
            raise BlobNotFoundError(name) from exc

    async def copy_to(self, name: str, path: Path) -> None:
        def copy() -> None:
            try:
                # A copy, not a link: the stored instance must not change if the user later
                # edits or replaces the file they imported.
                shutil.copyfile(self._path(name), path)
            except FileNotFoundError as exc:
                raise BlobNotFoundError(name) from exc

        await in_thread(copy)

    async def delete(self, name: str) -> None:
        await in_thread(lambda: self._path(name).unlink(missing_ok=True))

    async def delete_many(self, names: list[str]) -> None:
        def delete_all() -> None:  # one worker-thread trip for the lot
            for name in names:
                self._path(name).unlink(missing_ok=True)

        await in_thread(delete_all)

    async def close(self) -> None:
        pass
