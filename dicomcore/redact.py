"""Logs without patient data: exceptions summarised by type and place, never by message.

The messages of pydicom's and our validation's exceptions may quote attribute values
(a patient's name in a malformed PN, an ID that is too long), and a traceback prints the
message. Logs must carry none of that, so errors are logged as :func:`error_summary` (the
exception's type and the line that raised it) and :class:`RedactExceptions`, installed on
the server's log handlers, rewrites any record that still carries an exception.
"""

from __future__ import annotations

import logging
import traceback

import pydicom.config


def error_summary(exc: BaseException) -> str:
    """``ValueError at dicomcore/instance.py:120 in read_frame_fallback``: enough to find
    the fault, nothing of the data that caused it."""
    frames = traceback.extract_tb(exc.__traceback__)
    if not frames:
        return type(exc).__name__
    last = frames[-1]
    return f"{type(exc).__name__} at {_short(last.filename)}:{last.lineno} in {last.name}"


def _short(path: str) -> str:
    """The path from the package down (``pydicom/filereader.py``), not the install folder."""
    parts = path.replace("\\", "/").split("/")
    return "/".join(parts[-2:])


class RedactExceptions(logging.Filter):
    """Replace a record's traceback by the chain of :func:`error_summary` lines."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and record.exc_info[1] is not None:
            chain: list[str] = []
            exc: BaseException | None = record.exc_info[1]
            while exc is not None and len(chain) < 5:
                chain.append(error_summary(exc))
                exc = exc.__cause__ or exc.__context__
            record.msg = f"{record.msg} [{' <- '.join(chain)}]"
            record.exc_info = None
            record.exc_text = None
        return True


class RedactQueryStrings(logging.Filter):
    """uvicorn's access log prints each request's path with its query string, and a QIDO
    query string holds what was searched for (``PatientName=DOE^JOHN``): keep the path, drop
    the query's values."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple) and len(record.args) >= 3 and isinstance(record.args[2], str):
            path, question, _ = record.args[2].partition("?")
            if question:
                record.args = (*record.args[:2], f"{path}?(query not logged)", *record.args[3:])
        return True


def quiet_pydicom() -> None:
    """pydicom logs (and warns about) each invalid value it reads, quoting the value: a
    malformed patient name would reach the log. Values are validated where they matter
    (:mod:`dicomcore.validation`), with messages that go to the client, not the log."""
    pydicom.config.settings.reading_validation_mode = pydicom.config.IGNORE
    logging.getLogger("pydicom").setLevel(logging.ERROR)


def install(*logger_names: str, access_logger: str = "uvicorn.access") -> None:
    """Put :class:`RedactExceptions` on every handler of the root logger and of
    ``logger_names`` (uvicorn's), and :class:`RedactQueryStrings` on the access log's, once."""
    for name in ("", *logger_names):
        for handler in logging.getLogger(name).handlers:
            if not any(isinstance(f, RedactExceptions) for f in handler.filters):
                handler.addFilter(RedactExceptions())
    for handler in logging.getLogger(access_logger).handlers:
        if not any(isinstance(f, RedactQueryStrings) for f in handler.filters):
            handler.addFilter(RedactQueryStrings())
