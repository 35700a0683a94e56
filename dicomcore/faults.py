"""Crash points for the crash tests: ``DICOMWEB_FAULT=<point>`` makes the process die there.

Only tests set the variable. A crash point is where a kill -9 would leave the stores in
a state the recovery must handle (docs/architecture.md, "Recovery"); dying with
``os._exit`` skips every cleanup, as a kill does. Points in use:

``after-index-commit``   STOW: the record and its create entry are committed, nothing after
``after-delete-commit``  DELETE: records removed, tombstones and delete entries committed,
                         no file removed yet
``mid-delete``           DELETE: the first instance's files removed, the rest not
"""

from __future__ import annotations

import os

ENV = "DICOMWEB_FAULT"
EXIT_CODE = 137
"""What a shell reports for a process killed by SIGKILL."""


def crash_point(name: str) -> None:
    """Die here, at once, when the tests asked for a crash at ``name``."""
    if os.environ.get(ENV) == name:
        os._exit(EXIT_CODE)
