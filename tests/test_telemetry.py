"""Traces and metrics of one STOW, one frame GET and one QIDO search, through in-memory
exporters: a server span per request with child spans for the blob, index and feed calls,
the STOW/frame/QIDO metrics, and no patient data anywhere in them."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry import metrics, trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from starlette.testclient import TestClient

from dicomweb.http.telemetry import route_of
from tests.support.builders import make_dataset, multipart_body, to_bytes

pytestmark = pytest.mark.both_backends

PATIENT_NAME, PATIENT_ID = "SECRET^PATIENTNAME", "PID-SECRET-42"
_spans = InMemorySpanExporter()
_metrics = InMemoryMetricReader()


@pytest.fixture(scope="module", autouse=True)
def providers() -> Iterator[None]:
    """The process's providers, set once (OpenTelemetry allows one); instruments made before bind to them."""
    provider = trace.get_tracer_provider()
    if not isinstance(provider, TracerProvider):
        provider = TracerProvider()
        trace.set_tracer_provider(provider)
    provider.add_span_processor(SimpleSpanProcessor(_spans))
    metrics.set_meter_provider(MeterProvider(metric_readers=[_metrics]))
    yield
    _spans.shutdown()  # later tests' spans are dropped, not kept in memory


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    _spans.clear()
    yield _spans


def _children(all_spans: tuple[ReadableSpan, ...], parent: ReadableSpan) -> list[str]:
    """Names of the spans under ``parent`` (any depth)."""
    ids = {parent.context.span_id}
    names = []
    for span in sorted(all_spans, key=lambda s: s.start_time or 0):
        if span.parent is not None and span.parent.span_id in ids:
            ids.add(span.context.span_id)
            names.append(span.name)
    return names


def _server_span(all_spans: tuple[ReadableSpan, ...], name: str) -> ReadableSpan:
    (span,) = [s for s in all_spans if s.kind == SpanKind.SERVER and s.name == name]
    return span


def _metric_points() -> dict[str, list[Any]]:
    data = _metrics.get_metrics_data()
    points: dict[str, list[Any]] = {}
    for resource in data.resource_metrics if data else []:
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                points.setdefault(metric.name, []).extend(metric.data.data_points)
    return points


def test_spans_and_metrics_of_a_stow_a_frame_and_a_search(client: TestClient, spans: InMemorySpanExporter) -> None:
    before = _metric_points()
    published: list[Any] = []

    async def subscriber(entry: Any) -> None:
        published.append(entry)

    client.app.state.services.events.subscribe(subscriber)  # type: ignore[attr-defined]
    ds = make_dataset(patient_name=PATIENT_NAME, patient_id=PATIENT_ID, rows=64, columns=64, frames=3)
    instance = to_bytes(ds)
    body, content_type = multipart_body([instance])
    stow = client.post("/v1/studies", content=body, headers={"Content-Type": content_type})
    assert stow.status_code == 200
    frame_path = (f"/v1/studies/{ds.StudyInstanceUID}/series/{ds.SeriesInstanceUID}"
                  f"/instances/{ds.SOPInstanceUID}/frames/2")
    frame = client.get(frame_path, headers={"Accept": 'multipart/related; type="application/octet-stream"'})
    assert frame.status_code == 200
    search = client.get("/v1/studies", params={"PatientName": PATIENT_NAME, "PatientID": PATIENT_ID})
    assert search.status_code == 200 and len(search.json()) == 1

    finished = spans.get_finished_spans()
    stow_span = _server_span(finished, "POST /v1/studies")
    assert stow_span.attributes and stow_span.attributes["http.response.status_code"] == 200
    stow_children = _children(finished, stow_span)
    # The index commits the record and its feed entry together (SQLite: from the one worker
    # trip that also places the file, hence the blocking variant).
    assert {"index.add_instance", "index.add_instance_blocking"} & set(stow_children), stow_children
    assert any(name.startswith("blob.") for name in stow_children), stow_children

    frame_span = _server_span(finished, "GET /v1/studies/{uid}/series/{uid}/instances/{uid}/frames/{n}")
    frame_children = _children(finished, frame_span)
    # The frame's range comes from the frame-index sidecar beside the file: one ranged read.
    assert any(name.startswith("blob.read_range") for name in frame_children), frame_children

    search_span = _server_span(finished, "GET /v1/studies")
    assert "index.search" in _children(finished, search_span)

    assert client.get("/v1/changefeed").status_code == 200
    feed_span = _server_span(spans.get_finished_spans(), "GET /v1/changefeed")
    assert any(name.startswith("feed.") for name in _children(spans.get_finished_spans(), feed_span))

    for span in finished:  # no patient data in names, attributes or events
        text = f"{span.name} {dict(span.attributes or {})} {[e.attributes for e in span.events]}"
        assert PATIENT_NAME.split("^")[0] not in text and PATIENT_ID not in text, text

    deadline = time.monotonic() + 10
    while not published and time.monotonic() < deadline:  # the publisher runs in the background
        time.sleep(0.05)
    assert published, "the change event was not published"
    time.sleep(0.1)
    after = _metric_points()
    assert _count(after, "dicomweb.events.lag") - _count(before, "dicomweb.events.lag") >= 1
    assert any(span.name == "events.publish" for span in spans.get_finished_spans())
    assert _sum(after, "dicomweb.stow.instances") - _sum(before, "dicomweb.stow.instances") == 1
    assert _sum(after, "dicomweb.stow.bytes") - _sum(before, "dicomweb.stow.bytes") == len(instance)
    assert _count(after, "dicomweb.frame.duration") - _count(before, "dicomweb.frame.duration") == 1
    assert _count(after, "dicomweb.qido.duration") - _count(before, "dicomweb.qido.duration") == 1
    for points in after.values():
        assert all(PATIENT_ID not in str(p.attributes) for p in points)


def _sum(points: dict[str, list[Any]], name: str) -> int:
    return sum(p.value for p in points.get(name, []))


def _count(points: dict[str, list[Any]], name: str) -> int:
    return sum(p.count for p in points.get(name, []))


def test_route_shapes_hold_no_values_from_the_request() -> None:
    assert route_of("/v1/studies/1.2.3/series/4.5/instances/6.7/frames/1,2,3") == \
        "/v1/studies/{uid}/series/{uid}/instances/{uid}/frames/{n}"
    assert route_of("/v1/studies/DOE^JOHN/metadata") == "/v1/studies/{id}/metadata"
    assert route_of("/v1/operations/ingest-failures") == "/v1/operations/ingest-failures"
