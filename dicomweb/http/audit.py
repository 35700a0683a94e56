"""The audit trail: one JSON line per API request, saying who did what to which instances.

Fields: ``time`` (UTC, request start), ``caller`` (``oid``/``sub``), ``application``
(``appid``/``azp``), ``clientIp``, ``permission``, ``method``, ``route`` (the path
template, never the path: the template carries no values), ``studies``/``series``/
``instances`` (the UIDs touched: from the path, and what STOW stored), ``status``,
``durationMs``, ``correlationId`` (the request's ``X-Request-Id``, else the trace id of its
``traceparent``, else a new id; echoed as ``X-Request-Id``). Never patient names or IDs,
never query strings (a search may name a patient).

Embedded: appended to ``DATA/audit.log`` (``DICOMWEB_AUDIT_LOG`` for another path),
rotated at 10 MB, 10 files kept, file mode 0600. Azure: the same line through the
``dicomweb.audit`` logger, which the Functions host sends to Application Insights.
"""

from __future__ import annotations

import json
import logging
import logging.handlers
import os
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


class AuditSink:
    """Where the lines go: a rotated file (embedded) or the ``dicomweb.audit`` logger."""

    def __init__(self, path: Path | None) -> None:
        self._handler: logging.Handler | None = None
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.touch(mode=0o600, exist_ok=True)
            self._handler = logging.handlers.RotatingFileHandler(
                path, maxBytes=ROTATE_BYTES, backupCount=ROTATE_KEEP, encoding="utf-8")
        self._logger = logging.getLogger("dicomweb.audit")

    def write(self, line: str) -> None:
        if self._handler is None:
            self._logger.info(line)
            return
        record = logging.makeLogRecord({"msg": line, "levelno": logging.INFO, "levelname": "INFO"})
        self._handler.handle(record)
        path = getattr(self._handler, "baseFilename", "")
        if path and os.stat(path).st_mode & 0o077:  # a rotation made a new file
            os.chmod(path, 0o600)

    def close(self) -> None:
        if self._handler is not None:
            self._handler.close()


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
