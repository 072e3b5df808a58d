"""Traces and metrics: one request followed across services, and each service's rate, errors and
duration per route and per callee.

Both are off unless the service's :class:`~smplcore.settings.TelemetrySettings` ask for them,
and cost nothing then: OpenTelemetry is not even imported.

- **Traces** (``otlp_endpoint`` set; the ``telemetry`` extra): a span per request, named by its
  route template (``GET /v1/widgets/{widget_id}``), a child span per call made through
  :class:`~smplcore.client.InternalClient`, and the W3C ``traceparent`` passed on to the callee.
  Every log line written inside a span carries its ``trace_id`` and ``span_id``. Spans are
  sampled at ``trace_sample_ratio`` where a trace starts (a request that comes with a
  ``traceparent`` follows its caller's decision) and exported over OTLP/HTTP in the background.
- **Metrics** (``metrics``): CloudWatch embedded metric format (EMF) members on the request
  line (``duration_ms`` and ``error`` by service, method and route template) and on the call
  line (by service and callee). On ECS the log driver already sends these lines to CloudWatch
  Logs, which turns them into metrics: no agent, no exporter, nothing more per request than a
  few members of a line that is written anyway.

Code that runs outside a request records its own spans with :func:`span`, starting from the
``traceparent`` a message carries, and passes its trace on with :func:`trace_headers`; its log
lines carry the ids like a request's. The core's queue worker does so for every message (a
consumer span continuing the trace of the code that sent it with
:func:`smplcore.worker.send_message`), and :func:`smplcore.jobs.run_job` for every run.
:func:`trace_queries` adds a child span per statement a SQLAlchemy engine runs.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Final, Literal, Protocol, cast, overload

from smplcore._context import RequestContext, current_unsampled_trace
from smplcore._log_lines import log_request, set_trace_members
from smplcore._routes import api_routes
from smplcore.settings import CoreSettings, TelemetrySettings

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine
    from sqlalchemy.ext.asyncio import AsyncEngine
    from starlette.types import Scope

    from smplcore._tracing import Tracing

__all__ = [
    "Span",
    "SpanKind",
    "span",
    "start_telemetry",
    "trace_headers",
    "trace_queries",
]

SpanKind = Literal["internal", "server", "client", "producer", "consumer"]
UNMATCHED_ROUTE: Final = "(unmatched)"
"""The route label of a request no route answered (an unknown path, a refused token)."""


class Span(Protocol):
    """What code can record on the span :func:`span` opened."""

    def set_attribute(self, key: str, value: str | int | float | bool) -> None: ...

    def fail(self, description: str) -> None:
        """Mark the span as failed."""


class _NoSpan:
    """The span of :func:`span` while tracing is off: records nothing."""

    def set_attribute(self, key: str, value: str | int | float | bool) -> None:
        pass

    def fail(self, description: str) -> None:
        pass


_NO_SPAN: Final = _NoSpan()


class _Active:
    """What :func:`start_telemetry` turned on for the process."""

    tracing: Tracing | None = None
    metrics: Metrics | None = None


_active = _Active()


@overload
def start_telemetry(settings: CoreSettings) -> RequestTelemetry | None: ...


@overload
def start_telemetry(
    settings: TelemetrySettings, *, service_name: str
) -> RequestTelemetry | None: ...


def start_telemetry(
    settings: CoreSettings | TelemetrySettings, *, service_name: str | None = None
) -> RequestTelemetry | None:
    """Turn on what ``settings.telemetry`` asks for, for the whole process (and off what it does
    not); the request middleware's part of it, or ``None`` when all is off.

    :func:`smplcore.install_core` calls it; a process without an app (a worker, a job) calls it
    once at start-up, with its :class:`~smplcore.settings.TelemetrySettings` and its
    ``service_name`` when it has no :class:`~smplcore.settings.CoreSettings`. Spans still
    waiting to be exported by an earlier call's exporter are flushed; the rest are at the
    process's exit.
    """
    if isinstance(settings, CoreSettings):
        telemetry, service_name = settings.telemetry, settings.service_name
    elif service_name is None:
        raise TypeError("start_telemetry(TelemetrySettings(...)) needs service_name=")
    else:
        telemetry = settings
    if _active.tracing is not None:
        _active.tracing.shutdown()
        _active.tracing = None
    if telemetry.tracing:
        from smplcore._tracing import Tracing  # noqa: PLC0415 - only a traced service imports the SDK

        _active.tracing = Tracing(telemetry, service_name)
    _active.metrics = Metrics(telemetry.metrics_namespace) if telemetry.metrics else None
    set_trace_members(None if _active.tracing is None else _active.tracing.log_members)
    if _active.tracing is None and _active.metrics is None:
        return None
    return RequestTelemetry(_active.tracing, _active.metrics)


@contextmanager
def span(
    name: str,
    *,
    kind: SpanKind = "internal",
    carrier: Mapping[str, str] | None = None,
    attributes: Mapping[str, str | int | float | bool] | None = None,
) -> Iterator[Span]:
    """A span around the block: a child of the current one, or of the trace whose W3C
    ``traceparent`` is in ``carrier`` (a message's attributes, a request's headers). An
    exception that leaves the block marks it failed. While tracing is off: nothing, at the cost
    of a function call."""
    tracing = _active.tracing
    if tracing is None or (carrier is None and current_unsampled_trace() is not None):
        # Nothing of a trace that is not sampled is recorded: its lines keep the request's ids.
        yield _NO_SPAN
        return
    with tracing.span(name, kind=kind, carrier=carrier, attributes=attributes) as opened:
        yield opened


def trace_headers() -> dict[str, str]:
    """The W3C trace context of the current span (``traceparent``, ``tracestate``) to send
    with a call or a message; empty while tracing is off or outside any span."""
    tracing = _active.tracing
    return {} if tracing is None else tracing.headers()


def trace_queries(engine: AsyncEngine | Engine) -> None:
    """While tracing is on, a child span per statement ``engine`` (SQLAlchemy's) runs in a
    recorded trace, named by its operation and database (``SELECT orders``), with the statement
    as written (its values are parameters, never in the span); nothing while tracing is off.

    Call it where the engine is made, once :func:`start_telemetry` has run (in an app,
    :func:`smplcore.install_core` runs it).
    """
    tracing = _active.tracing
    if tracing is not None:
        # SQLAlchemy's events are the synchronous engine's: an AsyncEngine runs one inside.
        tracing.trace_queries(cast("Engine", getattr(engine, "sync_engine", engine)))


def call_metrics(*, failed: bool) -> str:
    """The call line's metrics as encoded members (the client's), when metrics are on."""
    metrics = _active.metrics
    return "" if metrics is None else metrics.members(metrics.call_directive, failed=failed)


class Metrics:
    """CloudWatch embedded metric format: the ``_aws`` member naming which members of a line are
    metrics and which are their dimensions, added to the request and call lines.

    The dimensions are bounded: the service, the method and the route template of a request
    (never its path), the callee of a call.
    """

    def __init__(self, namespace: str) -> None:
        self.request_directive = self._directive(
            namespace, [["service", "method", "route"], ["service"]]
        )
        self.call_directive = self._directive(namespace, [["service", "callee"]])

    @staticmethod
    def _directive(namespace: str, dimensions: list[list[str]]) -> str:
        """The directive, encoded once: encoding it on every line cost each request line 3 us
        (timed in-process), 1.5 % of a POST's server CPU (bench telemetry)."""
        directive = {
            "Namespace": namespace,
            "Dimensions": dimensions,
            "Metrics": [
                {"Name": "duration_ms", "Unit": "Milliseconds"},
                {"Name": "error", "Unit": "Count"},
            ],
        }
        return json.dumps(directive, separators=(",", ":"))

    @staticmethod
    def members(directive: str, *, failed: bool) -> str:
        """``error`` (1 for a failure, else 0: its average is the error rate, its sample count
        the request rate) and the ``_aws`` member, encoded, for a line that has ``duration_ms``."""
        timestamp = int(time.time() * 1000)
        metadata = f'{{"Timestamp":{timestamp},"CloudWatchMetrics":[{directive}]}}'
        return f',"error":{int(failed)},"_aws":{metadata}'


class RequestTelemetry:
    """The request middleware's part: a server span around each request, its route template,
    and the request line's metrics."""

    def __init__(self, tracing: Tracing | None, metrics: Metrics | None) -> None:
        self.tracing = tracing
        self.metrics = metrics
        self._templates: dict[int, str] = {}

    def request_started(
        self, method: str, headers: Mapping[bytes, bytes], request: RequestContext
    ) -> object | None:
        """The request's span, started (and current) before the app runs, when it is sampled."""
        if self.tracing is None:
            return None
        return self.tracing.start_request(method, headers, request)

    def request_finished(
        self, started: object | None, scope: Scope, fields: dict[str, Any]
    ) -> None:
        """Name the span and the metrics by the route template, write the request line (inside
        the span), then end the span."""
        status: int = fields["status"]
        route = self.route_template(scope)
        encoded = ""
        if self.metrics is not None:
            fields["route"] = route or UNMATCHED_ROUTE
            encoded = self.metrics.members(self.metrics.request_directive, failed=status >= 500)
        log_request(fields, error=status >= 500, encoded=encoded)
        if self.tracing is not None:
            self.tracing.end_request(started, route, status)

    def route_template(self, scope: Scope) -> str | None:
        """The path template of the route that answered (``/v1/widgets/{widget_id}``), with the
        prefixes of the routers it was included through; ``None`` when none did."""
        route = scope.get("route")
        if route is None:
            return None
        template = self._templates.get(id(route))
        if template is None:
            # FastAPI 0.165 keeps included routers nested: the route itself knows only its path
            # within its router, the app's route contexts the full one.
            self._templates = {
                id(getattr(context, "original_route", context)): context.path_format
                for context in api_routes(scope["app"])
                if isinstance(getattr(context, "path_format", None), str)
            }
            template = self._templates.setdefault(id(route), getattr(route, "path", "") or "")
        return template or None
