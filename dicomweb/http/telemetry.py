"""One server span per request, and the request-latency metrics (QIDO, frames, all).

Why not opentelemetry-instrumentation-asgi: it records the full URL with its query string,
and a QIDO query string can hold a patient's name or ID. Here the span is named by the
route's shape only (``GET /v1/studies/{uid}/series/{uid}/instances/{uid}/frames/{n}``):
every path segment that is not one of the API's own words becomes a placeholder, so no
value a client sent reaches the trace.
"""

from __future__ import annotations

import re
import time

from opentelemetry.trace import SpanKind, Status, StatusCode
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from dicomweb.http.response_start import on_response_start
from dicomweb.telemetry import instruments

WORDS = frozenset({
    "v1", "studies", "series", "instances", "frames", "metadata", "rendered", "thumbnail", "bulkdata",
    "changefeed", "latest", "operations", "ingest-failures", "uploads", "workitems", "subscriptions",
})
UID = re.compile(r"^[0-9.]+$")
SEARCHES = ("/studies", "/series", "/instances")


def route_of(path: str) -> str:
    """``path`` with every segment that is not an API word replaced by a placeholder."""
    shaped: list[str] = []
    for segment in path.strip("/").split("/"):
        if segment in WORDS or not segment:
            shaped.append(segment)
        elif shaped and shaped[-1] == "frames" and segment.replace(",", "").isdigit():
            shaped.append("{n}")
        elif UID.match(segment):
            shaped.append("{uid}")
        else:
            shaped.append("{id}")
    return "/" + "/".join(shaped)


class RequestTelemetry:
    """A server span and the latency metrics per request, while telemetry is on (else a
    pass-through: :func:`dicomweb.telemetry.instruments.recording`)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        instruments.refresh()  # built at the app's first request: a provider set up before it counts

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not instruments.recording():
            await self.app(scope, receive, send)  # telemetry off: no span, no metric, nothing made
            return
        method = scope["method"]
        route = route_of(scope["path"])
        status = 500

        def note_status(message: Message) -> None:
            nonlocal status
            status = message["status"]

        started = time.perf_counter()
        attributes = {"http.request.method": method, "http.route": route}
        with instruments.tracer.start_as_current_span(f"{method} {route}", kind=SpanKind.SERVER,
                                                      attributes=attributes) as span:
            try:
                await self.app(scope, receive, on_response_start(send, note_status))
            finally:
                span.set_attribute("http.response.status_code", status)
                if status >= 500:
                    span.set_status(Status(StatusCode.ERROR))
                self._measure(method, route, status, time.perf_counter() - started)

    @staticmethod
    def _measure(method: str, route: str, status: int, seconds: float) -> None:
        labels: dict[str, str | int] = {
            "http.request.method": method, "http.route": route, "http.response.status_code": status}
        instruments.request_duration.record(seconds, labels)
        if method != "GET":
            return
        if route.endswith("/frames/{n}"):
            instruments.frame_duration.record(seconds, {"http.response.status_code": status})
        elif route.endswith(SEARCHES):
            instruments.qido_duration.record(seconds, {"http.route": route, "http.response.status_code": status})
