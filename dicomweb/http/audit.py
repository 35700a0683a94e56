"""The audit trail: one JSON line per API request, saying who did what to which instances.

Fields: ``time`` (UTC, request start), ``caller`` (``oid``/``sub``), ``application``
(``appid``/``azp``), ``clientIp``, ``permission``, ``method``, ``route`` (the path
template, never the path: the template carries no values), ``studies``/``series``/
``instances`` (the UIDs touched: from the path, and what STOW stored), ``status``,
``durationMs``, ``correlationId`` (the request's ``X-Request-Id``, else the trace id of its
``traceparent``, else a new id; echoed as ``X-Request-Id``). Never patient names or IDs,
never query strings (a search may name a patient).

Embedded: appended to ``DATA/audit.log`` (``DICOMWEB_AUDIT_LOG`` for another path),
rotated at 10 MB, 10 files kept, file mode 0600, by a writer thread off the event loop
(every line queued before a clean shutdown reaches the file). Azure: the same line through the
``dicomweb.audit`` logger, which the Functions host sends to Application Insights.
"""

from __future__ import annotations

import atexit
import json
import logging
import logging.handlers
import os
import queue
import threading
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from dicomweb.http.proxies import TrustedProxies
from dicomweb.http.response_start import on_response_start

MAX_UIDS = 1000
"""UIDs kept per level and request: a STOW of a whole study stays one bounded line."""
ROTATE_BYTES = 10 * 1024 * 1024
ROTATE_KEEP = 10

_SCOPE_KEY = "dicomweb.audit"
_PATH_LEVELS = {"study": "studies", "series": "series", "instance": "instances"}


@dataclass
class AuditRecord:
    method: str
    client_ip: str
    correlation_id: str
    started: float = field(default_factory=time.time)
    caller: str = ""
    application: str = ""
    permission: str = ""
    route: str = ""
    uids: dict[str, list[str]] = field(default_factory=lambda: {"studies": [], "series": [], "instances": []})
    status: int = 0

    def add_uid(self, level: str, uid: str) -> None:
        values = self.uids[level]
        if uid and uid not in values and len(values) < MAX_UIDS:
            values.append(uid)

    def add_path_uids(self, path_params: Mapping[str, Any]) -> None:
        for name, level in _PATH_LEVELS.items():
            if name in path_params:
                self.add_uid(level, str(path_params[name]))

    def line(self) -> str:
        return json.dumps({
            "time": datetime.fromtimestamp(self.started, UTC).isoformat(timespec="milliseconds"),
            "caller": self.caller, "application": self.application, "clientIp": self.client_ip,
            "permission": self.permission, "method": self.method, "route": self.route,
            **self.uids, "status": self.status,
            "durationMs": round((time.time() - self.started) * 1000, 1),
            "correlationId": self.correlation_id,
        })


def audit_record(scope: Scope) -> AuditRecord | None:
    """The record of the request in progress (``None`` outside the API)."""
    record = scope.get(_SCOPE_KEY)
    return record if isinstance(record, AuditRecord) else None


def note_stored(scope: Scope, study: str, series: str, sop: str) -> None:
    """Add the UIDs of an instance a request touched beyond those in its path (STOW)."""
    record = audit_record(scope)
    if record is not None:
        record.add_uid("studies", study)
        record.add_uid("series", series)
        record.add_uid("instances", sop)


class _OwnerOnlyRotatingFile(logging.handlers.RotatingFileHandler):
    """A rotated file created with mode 0600 (each new file after a rotation too), which is
    only ever a regular file of ours: no ``stat`` of the path per line, only the stream's
    position, to decide a rotation."""

    def _open(self) -> Any:
        descriptor = os.open(self.baseFilename, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
        os.chmod(self.baseFilename, 0o600)  # a file made before, under another umask
        return open(descriptor, "a", encoding=self.encoding)  # noqa: SIM115 - the handler owns and closes it

    def shouldRollover(self, record: logging.LogRecord) -> bool:  # noqa: N802 - the logging API's name
        if self.stream is None:
            self.stream = self._open()
        return self.stream.tell() + len(self.format(record)) + 1 >= self.maxBytes


class _LineQueue(logging.handlers.QueueHandler):
    def prepare(self, record: logging.LogRecord) -> logging.LogRecord:
        return record  # the message is the finished line: nothing to format, no copy to make


class AuditSink:
    """Where the lines go: a rotated file (embedded) or the ``dicomweb.audit`` logger.

    The file is written by a :class:`logging.handlers.QueueListener` thread: the request
    only puts its line on a queue (a write, a flush and a rotation check per line cost the
    event loop ~3% of its time in a STOW run). :meth:`close` drains the queue into the file;
    it runs at the app's shutdown and, for a sink never closed, at the interpreter's exit."""

    def __init__(self, path: Path | None) -> None:
        self._queue: _LineQueue | None = None
        self._listener: logging.handlers.QueueListener | None = None
        self._started = threading.Lock()
        self._path = path
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.touch(mode=0o600, exist_ok=True)
        self._logger = logging.getLogger("dicomweb.audit")

    def write(self, line: str) -> None:
        if self._path is None:
            self._logger.info(line)
            return
        handler = self._queue or self._start()
        handler.handle(logging.makeLogRecord({"msg": line, "levelno": logging.INFO, "levelname": "INFO"}))

    def _start(self) -> _LineQueue:
        """The file's writer thread, started by the first line (no thread for an app that
        never serves a request)."""
        assert self._path is not None
        with self._started:
            if self._queue is None:
                lines: queue.SimpleQueue[logging.LogRecord] = queue.SimpleQueue()
                file = _OwnerOnlyRotatingFile(self._path, maxBytes=ROTATE_BYTES, backupCount=ROTATE_KEEP,
                                              encoding="utf-8")
                self._listener = logging.handlers.QueueListener(lines, file)
                self._listener.start()
                atexit.register(self.close)
                self._queue = _LineQueue(lines)
            return self._queue

    def close(self) -> None:
        """Write every queued line to the file and close it (a later line starts a new writer)."""
        with self._started:
            listener, self._listener, self._queue = self._listener, None, None
        if listener is None:
            return
        atexit.unregister(self.close)
        listener.stop()  # the lines queued so far, then the writer thread ends
        for handler in listener.handlers:
            handler.close()


def _header(scope: Scope, name: bytes) -> str:
    for header, value in scope["headers"]:
        if header == name:
            return value.decode("latin-1")
    return ""


def _correlation_id(scope: Scope) -> str:
    request_id = _header(scope, b"x-request-id")[:128]
    if request_id and request_id.isprintable():
        return request_id
    parts = _header(scope, b"traceparent").split("-")
    if len(parts) == 4 and len(parts[1]) == 32:
        return parts[1]
    return uuid.uuid4().hex


class AuditTrail:
    """ASGI middleware writing one line per request under ``prefix``."""

    def __init__(self, app: ASGIApp, sink: AuditSink, proxies: TrustedProxies, prefix: str) -> None:
        self.app = app
        self.sink = sink
        self.proxies = proxies
        self.prefix = prefix

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] != "http" or not (path == self.prefix or path.startswith(self.prefix + "/")):
            await self.app(scope, receive, send)
            return
        record = AuditRecord(scope["method"], self.proxies.client_address(scope), _correlation_id(scope))
        scope[_SCOPE_KEY] = record

        def note_status(message: Message) -> None:
            record.status = message["status"]
            message["headers"] = [*message.get("headers", []),
                                  (b"x-request-id", record.correlation_id.encode("latin-1"))]

        try:
            await self.app(scope, receive, on_response_start(send, note_status))
        except BaseException:
            record.status = record.status or 500
            raise
        finally:
            self.sink.write(record.line())
