"""Per-request context shared by the middleware, the logging and the auth dependencies."""

from __future__ import annotations

from contextvars import ContextVar
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class AccountContext:
    """Who calls a public endpoint: the user (``subject``), their account and its tier."""

    subject: str
    account_id: str
    tier: str


@dataclass(frozen=True, slots=True)
class InternalCaller:
    """The service that calls an internal endpoint (the token's issuer)."""

    service: str


class UnsampledTrace:
    """The trace of a request that is not sampled: nothing of it is recorded, but every log line
    of the request carries its ids and every call passes them on (W3C ``traceparent``), so that
    the callee follows the decision and the lines of both services share the trace id."""

    __slots__ = ("log_members", "span_id", "trace_id", "trace_state")

    def __init__(self, trace_id: int, span_id: int, trace_state: str | None) -> None:
        self.trace_id = trace_id
        self.span_id = span_id
        self.trace_state = trace_state
        self.log_members = f',"trace_id":"{trace_id:032x}","span_id":"{span_id:016x}"'


class RequestContext:
    """Mutable per-request state: the middleware creates it; it or the auth dependencies record
    who calls (an account, or another service) once the token is verified; tracing records the
    request's trace when it is not sampled."""

    __slots__ = ("account", "caller", "request_id", "unsampled_trace")

    def __init__(self, request_id: str) -> None:
        self.request_id = request_id
        self.account: AccountContext | None = None
        self.caller: InternalCaller | None = None
        self.unsampled_trace: UnsampledTrace | None = None


request_context: ContextVar[RequestContext | None] = ContextVar(
    "smplcore_request_context", default=None
)


def current_unsampled_trace() -> UnsampledTrace | None:
    """The trace of the request being handled, when it is not sampled."""
    request = request_context.get()
    return None if request is None else request.unsampled_trace
