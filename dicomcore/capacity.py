"""Out of space: the one error every store raises when its disk or quota is full.

The blob stores and the index translate their own "full" errors (``ENOSPC``/``EDQUOT``,
SQLite's ``SQLITE_FULL``) into :class:`InsufficientStorageError`, so the use cases can
undo a half-stored instance and STOW can answer 507 without knowing which store is full.
"""

from __future__ import annotations

import errno

OUT_OF_SPACE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})


class InsufficientStorageError(OSError):
    """A store has no room left for this write."""


def is_out_of_space(exc: BaseException) -> bool:
    """True for an out-of-space error from any store (or the OS)."""
    return isinstance(exc, InsufficientStorageError) or (
        isinstance(exc, OSError) and exc.errno in OUT_OF_SPACE_ERRNOS)
