"""Reading the JSON text the index stores (records, level attributes), on the hot paths.

orjson rather than :mod:`json`: a QIDO answer of 1,000 studies decodes 4,000 such texts,
and json's decoder was ~17% of that request (docs/performance.md, "Third part: to
1,000,000"). orjson accepts only standard JSON; text that :func:`json.dumps` wrote with a
``NaN`` or ``Infinity`` in it (an odd number in a DICOM value) is read by :mod:`json`, as
before.
"""

from __future__ import annotations

import json
from typing import Any

import orjson


def load(text: str | bytes) -> Any:
    """The value ``text`` holds."""
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return json.loads(text)
