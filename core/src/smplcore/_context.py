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


class RequestContext:
    """Mutable per-request state: the middleware creates it; it or the auth dependencies record
    who calls (an account, or another service) once the token is verified."""

    __slots__ = ("account", "caller", "request_id")

    def __init__(self, request_id: str) -> None:
        self.request_id = request_id
        self.account: AccountContext | None = None
        self.caller: InternalCaller | None = None


request_context: ContextVar[RequestContext | None] = ContextVar(
    "smplcore_request_context", default=None
)
