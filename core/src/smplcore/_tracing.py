"""OpenTelemetry's SDK behind :mod:`smplcore.telemetry`: imported only when tracing is on.

The request's span is started and ended by the core's own middleware rather than by
``opentelemetry-instrumentation-asgi``, which wraps every ASGI message and records a span for
each ``http.response.start`` and body message, three spans per request where one tells it all.

The database's spans come from three SQLAlchemy events on the service's engine rather than from
``opentelemetry-instrumentation-sqlalchemy``: that one declares SQLAlchemy below 2.1 (its
``instrument()`` refuses the services' 2.1 with a logged error), instruments one engine per process
(a second call is ignored), wraps SQLAlchemy's ``create_engine`` and ``Engine.connect`` for every
engine of the process, and starts an SDK span for every statement, even where the trace is not
sampled or no trace runs at all.
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, Final, cast

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.trace.sampling import ALWAYS_ON
from opentelemetry.trace import (
    INVALID_SPAN_CONTEXT,
    NonRecordingSpan,
    SpanContext,
    SpanKind,
    Status,
    StatusCode,
    TraceFlags,
)
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from smplcore._context import RequestContext, UnsampledTrace, current_unsampled_trace

if TYPE_CHECKING:
    from opentelemetry.context import Context
    from sqlalchemy.engine import Engine, ExceptionContext
    from sqlalchemy.engine.interfaces import ExecutionContext

    from smplcore.settings import TelemetrySettings

_KINDS: Final = {
    "internal": SpanKind.INTERNAL,
    "server": SpanKind.SERVER,
    "client": SpanKind.CLIENT,
    "producer": SpanKind.PRODUCER,
    "consumer": SpanKind.CONSUMER,
}
_propagator = TraceContextTextMapPropagator()


class _OpenSpan:
    """An OpenTelemetry span as :class:`smplcore.telemetry.Span`."""

    __slots__ = ("_span",)

    def __init__(self, span: trace.Span) -> None:
        self._span = span

    def set_attribute(self, key: str, value: str | int | float | bool) -> None:
        self._span.set_attribute(key, value)

    def fail(self, description: str) -> None:
        self._span.set_status(Status(StatusCode.ERROR, description))


class Tracing:
    """One tracer provider for the process: spans sampled at the settings' ratio where a trace
    starts, batched and sent to ``{otlp_endpoint}/v1/traces``.

    Whether a trace is sampled is decided here, before the SDK sees it. A request whose trace is
    not sampled makes no OpenTelemetry object at all: its ids stay in the core's own request
    context, a fifth of the cost of an unrecorded span made current (timed in-process). Elsewhere
    a span of a trace that is not sampled is a ``NonRecordingSpan`` (ids only, as the SDK makes
    one), a fifth of the SDK's ``start_span``. The SDK is given only what is sampled, and records
    all of it.
    """

    def __init__(self, telemetry: TelemetrySettings, service_name: str) -> None:
        self.ratio = telemetry.trace_sample_ratio
        # Resource.create adds the SDK's own attributes and OTEL_RESOURCE_ATTRIBUTES (the task
        # definition's deployment.environment.name).
        resource = Resource.create({"service.name": service_name})
        self.provider = TracerProvider(resource=resource, sampler=ALWAYS_ON)
        exporter = OTLPSpanExporter(endpoint=f"{telemetry.otlp_endpoint}/v1/traces")
        self.provider.add_span_processor(BatchSpanProcessor(exporter))
        self.tracer = self.provider.get_tracer("smplcore")

    def shutdown(self) -> None:
        """Export what is waiting, then stop."""
        self.provider.shutdown()

    def start_request(
        self, method: str, headers: Mapping[bytes, bytes], request: RequestContext
    ) -> object | None:
        """The server span of a request whose trace is sampled (as its caller's ``traceparent``
        says, else at the settings' ratio), made current; ``None`` for any other request, whose
        ids are kept on ``request`` alone (:class:`~smplcore._context.UnsampledTrace`)."""
        parent = None
        caller = INVALID_SPAN_CONTEXT
        traceparent = headers.get(b"traceparent")
        if traceparent is not None:
            carrier = {"traceparent": traceparent.decode("latin-1")}
            tracestate = headers.get(b"tracestate")
            if tracestate is not None:
                carrier["tracestate"] = tracestate.decode("latin-1")
            parent = _propagator.extract(carrier)
            caller = trace.get_current_span(parent).get_span_context()
        if not self._sampled(caller):
            ids = self.provider.id_generator
            if caller.is_valid:
                trace_id, trace_state = caller.trace_id, caller.trace_state.to_header() or None
            else:
                trace_id, trace_state = ids.generate_trace_id(), None
            request.unsampled_trace = UnsampledTrace(trace_id, ids.generate_span_id(), trace_state)
            return None
        attributes = {"http.request.method": method}
        span = self.tracer.start_span(
            method, context=parent, kind=SpanKind.SERVER, attributes=attributes
        )
        return span, otel_context.attach(trace.set_span_in_context(span)), method

    def start_span(
        self,
        name: str,
        kind: SpanKind,
        parent: Context | None,
        attributes: Mapping[str, str | int | float | bool] | None,
    ) -> trace.Span:
        """A child of ``parent``'s span (else of the current one), recorded if its trace is
        sampled: as its parent was, or, for a trace's first span, at the settings' ratio."""
        parent_context = trace.get_current_span(parent).get_span_context()
        if self._sampled(parent_context):
            return self.tracer.start_span(name, context=parent, kind=kind, attributes=attributes)
        ids = self.provider.id_generator
        context = SpanContext(
            trace_id=(
                parent_context.trace_id if parent_context.is_valid else ids.generate_trace_id()
            ),
            span_id=ids.generate_span_id(),
            is_remote=False,
            trace_flags=TraceFlags(TraceFlags.DEFAULT),
            trace_state=parent_context.trace_state,
        )
        return NonRecordingSpan(context)

    def _sampled(self, parent: SpanContext) -> bool:
        """As ``parent`` was, or for a trace that starts here, at the settings' ratio."""
        if parent.is_valid:
            return bool(parent.trace_flags.sampled)
        return random.random() < self.ratio  # noqa: S311 - a sampling draw, not a secret

    def end_request(self, started: object | None, route: str | None, status: int) -> None:
        if started is None:  # not sampled
            return
        # what start_request returned
        span, token, method = cast("tuple[trace.Span, object, str]", started)
        attributes: dict[str, str | int] = {"http.response.status_code": status}
        if route is not None:
            span.update_name(f"{method} {route}")
            attributes["http.route"] = route
        span.set_attributes(attributes)
        if status >= 500:
            span.set_status(Status(StatusCode.ERROR))
        span.end()
        otel_context.detach(token)  # type: ignore[arg-type]  # attach's token

    @contextmanager
    def span(
        self,
        name: str,
        *,
        kind: str,
        carrier: Mapping[str, str] | None,
        attributes: Mapping[str, str | int | float | bool] | None,
    ) -> Iterator[_OpenSpan]:
        parent = None if carrier is None else _propagator.extract(dict(carrier))
        opened = self.start_span(name, _KINDS[kind], parent, attributes)
        with trace.use_span(opened, end_on_exit=True, record_exception=True):
            yield _OpenSpan(opened)

    def trace_queries(self, engine: Engine) -> None:
        """A client span per statement ``engine`` runs inside a recorded span (its trace is
        sampled), named by its operation and database (``SELECT orders``). Elsewhere a statement
        costs two event calls and no span: nothing is logged while a statement runs."""
        from sqlalchemy import event  # noqa: PLC0415 - the core does not depend on SQLAlchemy

        system, database = engine.dialect.name, engine.url.database
        connection: dict[str, str | int] = {"db.system.name": system}
        if database:
            connection["db.namespace"] = database
        if engine.url.host:
            connection["server.address"] = engine.url.host
        if engine.url.port:
            connection["server.port"] = engine.url.port
        tracer = self.tracer

        def before(
            _connection: object,
            _cursor: object,
            statement: str,
            _parameters: object,
            context: ExecutionContext | None,
            _executemany: bool,
        ) -> None:
            if context is None or not trace.get_current_span().is_recording():
                return
            words = statement.split(maxsplit=1)
            operation = words[0].upper() if words else system
            attributes = {
                **connection,
                "db.operation.name": operation,
                "db.query.text": statement,
            }
            name = f"{operation} {database}" if database else operation
            context._smplcore_span = tracer.start_span(  # type: ignore[attr-defined]
                name, kind=SpanKind.CLIENT, attributes=attributes
            )

        def after(
            _connection: object,
            _cursor: object,
            _statement: str,
            _parameters: object,
            context: ExecutionContext | None,
            _executemany: bool,
        ) -> None:
            span: trace.Span | None = getattr(context, "_smplcore_span", None)
            if span is not None:
                span.end()

        def failed(error: ExceptionContext) -> None:
            span: trace.Span | None = getattr(error.execution_context, "_smplcore_span", None)
            if span is not None:
                error_type = type(error.original_exception).__name__
                span.set_attribute("error.type", error_type)
                span.set_status(Status(StatusCode.ERROR, error_type))
                span.end()

        event.listen(engine, "before_cursor_execute", before)
        event.listen(engine, "after_cursor_execute", after)
        event.listen(engine, "handle_error", failed)

    @staticmethod
    def headers() -> dict[str, str]:
        carrier: dict[str, str] = {}
        if trace.get_current_span().get_span_context().is_valid:
            _propagator.inject(carrier)
            return carrier
        unsampled = current_unsampled_trace()
        if unsampled is not None:
            ids = f"{unsampled.trace_id:032x}-{unsampled.span_id:016x}"
            carrier["traceparent"] = f"00-{ids}-00"
            if unsampled.trace_state is not None:
                carrier["tracestate"] = unsampled.trace_state
        return carrier

    @staticmethod
    def log_members() -> str:
        """``,"trace_id":...,"span_id":...`` of the current span (else of the request's trace
        that is not sampled), for every log line; empty outside any."""
        context = trace.get_current_span().get_span_context()
        if context.is_valid:
            return f',"trace_id":"{context.trace_id:032x}","span_id":"{context.span_id:016x}"'
        unsampled = current_unsampled_trace()
        return "" if unsampled is None else unsampled.log_members
