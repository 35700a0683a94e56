"""Tracing proxies the composition root wraps around the ports: one child span per call of a
blob store, index, change feed or event sink method (``blob.read_range``, ``index.search``,
...), so no adapter carries tracing code of its own.

Spans are named by component and method only and carry no arguments: blob names, UIDs and
query values stay out of the trace.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import AsyncIterator, Callable, Mapping
from datetime import UTC, datetime
from typing import Any, TypeVar, cast

from opentelemetry.trace import SpanKind

from changefeed.port import ChangeEntry, EventSink
from dicomweb.telemetry import instruments
from indexing.port import InstanceRecord

Port = TypeVar("Port")
Observer = Callable[..., None]
"""Called with the method's result and then its arguments, after a call that returned."""


class _Traced:
    def __init__(self, target: Any, component: str, observers: Mapping[str, Observer]) -> None:
        self._target = target
        self._component = component
        self._observers = observers
        self._wrappers: dict[str, Any] = {}

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._target, name)
        if name.startswith("_") or not callable(attribute):
            return attribute
        observer = self._observers.get(name)
        if observer is None and not instruments.recording():
            return attribute  # telemetry off: the adapter's own method, no span, no wrapper
        # One wrapper per method, made once: functools.wraps and the inspect checks cost
        # more than the call they wrap.
        wrapper = self._wrappers.get(name)
        if wrapper is None:
            wrapper = self._wrappers[name] = _wrap(attribute, f"{self._component}.{name}", observer)
        return wrapper


def _wrap(method: Callable[..., Any], span_name: str, observer: Observer | None) -> Callable[..., Any]:
    if inspect.isasyncgenfunction(method):
        return _traced_generator(method, span_name)
    if inspect.iscoroutinefunction(method):
        return _traced_coroutine(method, span_name, observer)
    return _traced_call(method, span_name, observer)


def traced(port: Port, component: str, observers: Mapping[str, Observer] | None = None) -> Port:
    """``port`` with a span around every public method call while telemetry is on (typed as
    the port it wraps); while it is off, calls go straight to the port's own methods."""
    return cast(Port, _Traced(port, component, observers or {}))


def _traced_coroutine(method: Callable[..., Any], span_name: str, observer: Observer | None) -> Callable[..., Any]:
    @functools.wraps(method)
    async def call(*args: Any, **kwargs: Any) -> Any:
        if instruments.recording():
            with instruments.tracer.start_as_current_span(span_name, kind=SpanKind.CLIENT):
                result = await method(*args, **kwargs)
        else:
            result = await method(*args, **kwargs)
        if observer is not None:
            observer(result, *args, **kwargs)
        return result

    return call


def _traced_generator(method: Callable[..., AsyncIterator[Any]], span_name: str) -> Callable[..., AsyncIterator[Any]]:
    @functools.wraps(method)
    async def iterate(*args: Any, **kwargs: Any) -> AsyncIterator[Any]:
        with instruments.tracer.start_as_current_span(span_name, kind=SpanKind.CLIENT):
            async for item in method(*args, **kwargs):
                yield item

    return iterate


def _traced_call(method: Callable[..., Any], span_name: str, observer: Observer | None) -> Callable[..., Any]:
    @functools.wraps(method)
    def call(*args: Any, **kwargs: Any) -> Any:
        if instruments.recording():
            with instruments.tracer.start_as_current_span(span_name, kind=SpanKind.CLIENT):
                result = method(*args, **kwargs)
        else:
            result = method(*args, **kwargs)
        if observer is not None:
            observer(result, *args, **kwargs)
        return result

    return call


def count_stored(added: bool, record: InstanceRecord, *args: Any, **kwargs: Any) -> None:
    """Observer of ``IndexStore.add_instance``: every instance newly indexed was stored."""
    if added:
        instruments.stored_instances.add(1)
        instruments.stored_bytes.add(record.size)


class MeasuredEventSink:
    """An event sink that records, for each published entry, how long after its change-feed
    entry the event went out: the event publisher's lag."""

    def __init__(self, sink: EventSink) -> None:
        self._sink = sink

    @property
    def active(self) -> bool:
        return self._sink.active

    async def publish(self, entries: list[ChangeEntry]) -> None:
        await self._sink.publish(entries)
        now = datetime.now(UTC)
        for entry in entries:
            if entry.timestamp:
                instruments.event_lag.record(max(0.0, (now - _parse_utc(entry.timestamp)).total_seconds()))

    async def close(self) -> None:
        await self._sink.close()

    def __getattr__(self, name: str) -> Any:
        """What a sink offers beyond the port (the in-process bus's ``subscribe``)."""
        return getattr(self._sink, name)


def _parse_utc(timestamp: str) -> datetime:
    return datetime.fromisoformat(timestamp.replace("Z", "+00:00"))
