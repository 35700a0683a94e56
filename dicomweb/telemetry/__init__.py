"""Traces and metrics (OpenTelemetry): the instruments, the port proxies the composition root
wraps around each adapter, and the exporters (Application Insights, OTLP, console)."""
