"""Per-request context shared by the middleware, the logging and the auth dependencies."""

from __future__ import annotations

from contextvars import ContextVar


class RequestContext:
    """Mutable per-request state; the middleware creates it, dependencies fill it in."""

    __slots__ = ("account_id", "caller", "request_id")

    def __init__(self, request_id: str) -> None:
        self.request_id = request_id
        self.account_id: str | None = None
        self.caller: str | None = None


request_context: ContextVar[RequestContext | None] = ContextVar(
    "smplcore_request_context", default=None
)
