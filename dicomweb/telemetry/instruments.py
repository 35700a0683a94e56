"""The service's metrics and its tracer, from the OpenTelemetry API.

Created at import, before any exporter is configured: the API hands out proxies that start
recording once a provider is set (:mod:`dicomweb.telemetry.exporters`), and record nothing
when none is (telemetry off, the default). Attributes never carry patient data.

:func:`recording` tells the hot paths (the request middleware, the port proxies) whether
anything records at all: with telemetry off they skip making spans, since even a no-op span
costs a context attach/detach and a few objects per call (~16% of the GIL's samples in a
bulk import, docs/performance.md).
"""

from __future__ import annotations

from opentelemetry import metrics, trace

NAME = "dicomweb"

tracer = trace.get_tracer(NAME)
meter = metrics.get_meter(NAME)

stored_instances = meter.create_counter(
    "dicomweb.stow.instances", unit="{instance}", description="Instances stored (STOW and imports)")
stored_bytes = meter.create_counter(
    "dicomweb.stow.bytes", unit="By", description="Bytes of the instances stored")
frame_duration = meter.create_histogram(
    "dicomweb.frame.duration", unit="s", description="Time to answer a WADO-RS frame request")
qido_duration = meter.create_histogram(
    "dicomweb.qido.duration", unit="s", description="Time to answer a QIDO-RS search")
event_lag = meter.create_histogram(
    "dicomweb.events.lag", unit="s",
    description="Time from a change-feed entry to its event being published (the event publisher's lag)")
request_duration = meter.create_histogram(
    "http.server.request.duration", unit="s", description="Time to answer a request")



_recording = False


def recording() -> bool:
    """Whether telemetry is on: a tracer provider was installed by the last :func:`refresh`.

    Read on every request and port call, so it is a plain flag: asking OpenTelemetry itself
    costs ~3 us a time (an environment lookup)."""
    return _recording


def refresh() -> bool:
    """Look again whether a tracer provider is installed (every exporter of
    :mod:`dicomweb.telemetry.exporters` installs one, with a meter provider). Called when
    telemetry is configured and when an app's middleware is built: a provider installed
    later than that is not seen by that app. OpenTelemetry never unsets a provider, so once
    on, it stays on."""
    global _recording
    if not _recording:
        _recording = not isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider | trace.NoOpTracerProvider)
    return _recording
