"""Numbers in URLs and query parameters, range-checked: a bad one is a 400 naming it.

``str.isdigit`` accepts digits ``int`` refuses (``²``) and ``int`` accepts numbers no store
can take (``offset=2**63`` overflows SQLite), so every number a request carries goes
through :func:`bounded_int`: ASCII digits only, within the range the caller states.
"""

from __future__ import annotations

import re

from dicomweb.http.errors import bad_request

_DIGITS = re.compile(r"[0-9]{1,19}")


def parse_ascii_int(text: str) -> int | None:
    """The value of ``text`` if it is 1-19 ASCII digits (surrounding spaces allowed), else ``None``."""
    stripped = text.strip()
    return int(stripped) if _DIGITS.fullmatch(stripped) else None


def bounded_int(name: str, text: str, low: int, high: int) -> int:
    """``text`` as an integer in ``low..high``; else a 400 naming ``name``."""
    value = parse_ascii_int(text)
    if value is None or not low <= value <= high:
        raise bad_request(f"{name}={text[:40]!r} must be an integer from {low} to {high}")
    return value
