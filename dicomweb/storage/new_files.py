"""Writing a new file durably and exclusively from bytes in memory (a STOW part).

The embedded store's protocol for a new instance file: write the bytes under a staging
name, fsync them, give them their name with a link that fails if the name is taken (the
first copy wins, across processes), fsync the folder. From bytes in memory this takes the
fewest calls: the staging file is created owner-only and fsynced on the descriptor that
wrote it (no reopen, no ``chmod``), and the folder, new for each instance, is made with one
``mkdir`` and opened once for both the link and its fsync.

Tried and not kept: an unnamed file (``O_TMPFILE``, linked in through ``/proc/self/fd``),
which saves the staging name and its unlink; with a new folder per file, as instances have,
it measured the same within the noise (docs/stow-receive.md).
"""

from __future__ import annotations

import errno
import os
from pathlib import Path


class NameTakenError(FileExistsError):
    """The target name exists: the new file was not placed."""


def write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def open_folder(folder: Path) -> int:
    """A descriptor of ``folder``, created when missing. Made first: each instance has a
    folder of its own (``dicomcore/layout.py``), so it is mostly new, and one ``mkdir`` is
    the cheapest way to learn so."""
    try:
        os.mkdir(folder)
    except FileExistsError:
        pass
    except FileNotFoundError:
        folder.mkdir(parents=True, exist_ok=True)
    return os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)


def write_staged(staged: Path, target: Path, data: bytes) -> None:
    """Place ``data`` as ``target``, through the staging path ``staged`` (same filesystem):
    written owner-only and fsynced, linked exclusively, unlinked, the folder fsynced.
    Raises :class:`NameTakenError` when ``target`` exists (nothing is left at ``staged``)."""
    fd = os.open(staged, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    try:
        try:
            write_all(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        folder_fd = open_folder(target.parent)
        try:
            try:
                os.link(staged, target.name, dst_dir_fd=folder_fd)
            except FileExistsError as exc:
                raise NameTakenError(errno.EEXIST, "the name is taken") from exc
            os.fsync(folder_fd)
        finally:
            os.close(folder_fd)
    finally:
        staged.unlink(missing_ok=True)
