"""Where traces and metrics go, set once per process from the settings.

- ``APPLICATIONINSIGHTS_CONNECTION_STRING`` set (the deployed app): the Azure Monitor
  OpenTelemetry distro, signing in with the app's identity (Application Insights' local auth
  is off in the deployment, so the connection string alone cannot send).
- ``DICOMWEB_TELEMETRY=otlp``: OTLP over HTTP, configured by the standard
  ``OTEL_EXPORTER_OTLP_*`` variables; ``console``: printed to standard output.
- otherwise off: the API's no-op providers, nothing recorded.
"""

from __future__ import annotations

import threading

from opentelemetry import metrics, trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import ConsoleMetricExporter, MetricExporter, PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter

from dicomweb.settings import Settings
from dicomweb.telemetry import instruments

SERVICE_NAME = "dicomweb"
_configured = threading.Lock()
_done = False


def configure_telemetry(settings: Settings) -> str:
    """Install the exporters ``settings`` ask for, once per process; returns which ("" for none)."""
    global _done
    with _configured:
        if _done:
            return ""
        choice = _choice(settings)
        if choice == "azure-monitor":
            _azure_monitor(settings.appinsights_connection_string)
        elif choice == "otlp":
            from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

            _sdk(OTLPSpanExporter(), OTLPMetricExporter())
        elif choice == "console":
            _sdk(ConsoleSpanExporter(), ConsoleMetricExporter())
        _done = bool(choice)
        instruments.refresh()  # the request middleware and the port proxies make spans from now on
        return choice


def _choice(settings: Settings) -> str:
    if settings.appinsights_connection_string:
        return "azure-monitor"
    if settings.telemetry in ("", "off", "none"):
        return ""
    if settings.telemetry in ("otlp", "console"):
        return settings.telemetry
    raise ValueError(f"DICOMWEB_TELEMETRY={settings.telemetry!r} is not supported; use 'otlp', 'console' or ''")


def _azure_monitor(connection_string: str) -> None:
    from azure.identity import DefaultAzureCredential
    from azure.monitor.opentelemetry import configure_azure_monitor

    # Only the Azure SDK's own spans beside ours: the web-framework instrumentations would
    # record full URLs, and a QIDO query string can hold a patient's name.
    off = {"enabled": False}
    configure_azure_monitor(
        connection_string=connection_string,
        credential=DefaultAzureCredential(),
        resource=Resource.create({"service.name": SERVICE_NAME}),
        instrumentation_options={name: off for name in (
            "django", "fastapi", "flask", "psycopg2", "requests", "urllib", "urllib3")},
    )


def _sdk(spans: SpanExporter, metric_exporter: MetricExporter) -> None:
    resource = Resource.create({"service.name": SERVICE_NAME})
    tracer_provider = TracerProvider(resource=resource)
    tracer_provider.add_span_processor(BatchSpanProcessor(spans))
    trace.set_tracer_provider(tracer_provider)
    metrics.set_meter_provider(MeterProvider(resource=resource, metric_readers=[
        PeriodicExportingMetricReader(metric_exporter)]))
