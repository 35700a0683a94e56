"""DICOM Unique Identifiers (PS3.5 §9.1)."""

from __future__ import annotations

import re

# Components are ASCII digits only (``\d`` would also accept other Unicode digits); a
# component of more than one digit must not start with 0, and "0" alone is allowed.
_UID = re.compile(r"(?:0|[1-9][0-9]*)(?:\.(?:0|[1-9][0-9]*))*")
_MAX_LENGTH = 64


def is_valid_uid(value: str) -> bool:
    """Whether ``value`` is a well-formed UID: 1–64 characters, digit components joined by '.'.

    Components may not be empty and a multi-digit component may not have a leading zero.
    Trailing NUL padding, as found in encoded values, is not accepted: strip it first.
    """
    return 0 < len(value) <= _MAX_LENGTH and _UID.fullmatch(value) is not None
