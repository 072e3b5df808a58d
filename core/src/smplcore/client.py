"""``InternalClient``: calls to another service's API, made the same way by every service.

One client per callee, opened once per process (an app's lifespan) and shared by its requests.
Each call:

- carries an internal token for the callee (issued once and reused until it nears its expiry;
  renewed once, and the call repeated, if the callee refuses it), the request id of the request
  being handled (``X-Request-ID``) and, while tracing is on, the W3C ``traceparent`` of a child
  span of the call;
- is bounded by the :class:`~smplcore.settings.ClientSettings` timeouts (connect, read, and the
  whole call with its retries);
- is retried, for an idempotent method only (GET, HEAD, OPTIONS, PUT, DELETE), after a
  connection error, a timeout or a 502, 503 or 504, with jittered exponential backoff, or after
  the callee's ``Retry-After`` when it gives one and the total timeout leaves room for it;
- answers the callee's response when it succeeded (2xx, 3xx) or raises a core error the caller
  decides about: the callee's 4xx as the core's error of the same status, with the callee's code
  and detail (a 404 stays the caller's decision, not a 500); a callee that cannot be reached in
  time, or answers 502, 503 or 504, as :class:`~smplcore.errors.ServiceUnavailableError` with
  ``Retry-After``; any other failure of the callee (a 5xx, a refused token) as a 502;
- writes one ``call`` log line: callee, method, path, status, duration, attempts (with the
  call's metrics when they are on).
"""

from __future__ import annotations

import json as jsonlib
import logging
import random
import time
from collections.abc import Mapping
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING, Any, Final

import anyio

from smplcore._log_lines import JSON_MEMBERS
from smplcore.auth import InternalTokens
from smplcore.errors import ServiceUnavailableError, SmplkitError, error_from_status
from smplcore.jsonapi import JSONAPI_MEDIA_TYPE
from smplcore.logging import current_request_id
from smplcore.settings import ClientSettings, CoreSettings, check_service_name
from smplcore.telemetry import call_metrics, span, trace_headers

if TYPE_CHECKING:
    import httpx

__all__ = ["DEFAULT_RETRY_AFTER", "IDEMPOTENT_METHODS", "InternalClient"]

IDEMPOTENT_METHODS: Final = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})
DEFAULT_RETRY_AFTER: Final = 5
"""Seconds the caller's client is told to wait when the callee did not say."""
_RETRIED_STATUSES: Final = frozenset({502, 503, 504})
_UNAVAILABLE_DETAIL: Final = "A service this request needs is unavailable; try again later."
_FAILED_DETAIL: Final = "A service this request needs failed to answer it."
_logger = logging.getLogger("smplcore.client")

Params = Mapping[str, str | int | float | bool | None]


class InternalClient:
    """Calls to the service ``callee`` at ``base_url`` (``http://billing.internal:8000``) as
    ``settings.service_name``.

    Use it as an async context manager, or :meth:`aclose` it. ``transport`` replaces httpx's
    (tests); ``tokens`` shares one token cache between clients.
    """

    def __init__(
        self,
        settings: CoreSettings,
        *,
        callee: str,
        base_url: str,
        client_settings: ClientSettings | None = None,
        tokens: InternalTokens | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        # httpx (and click, which it tries for its command line) is a quarter of a generated
        # app's import time: it is imported when a client is made, not with the core (bench:
        # import).
        import httpx  # noqa: PLC0415

        self._unanswered = (httpx.TransportError, TimeoutError)
        self.callee = check_service_name(callee)
        self.client_settings = client_settings or ClientSettings()
        self.tokens = tokens or InternalTokens(settings)
        timeout = httpx.Timeout(
            self.client_settings.read_timeout, connect=self.client_settings.connect_timeout
        )
        self._http = httpx.AsyncClient(
            base_url=base_url,
            timeout=timeout,
            transport=transport,
            headers={"Accept": JSONAPI_MEDIA_TYPE},
        )

    async def __aenter__(self) -> InternalClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the client's connections."""
        await self._http.aclose()

    async def get(self, path: str, *, params: Params | None = None) -> httpx.Response:
        return await self.request("GET", path, params=params)

    async def post(self, path: str, *, json: Any = None) -> httpx.Response:
        return await self.request("POST", path, json=json)

    async def put(self, path: str, *, json: Any = None) -> httpx.Response:
        return await self.request("PUT", path, json=json)

    async def patch(self, path: str, *, json: Any = None) -> httpx.Response:
        return await self.request("PATCH", path, json=json)

    async def delete(self, path: str) -> httpx.Response:
        return await self.request("DELETE", path)

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: Params | None = None,
        json: Any = None,
        headers: Mapping[str, str] | None = None,
    ) -> httpx.Response:
        """Call ``method path`` on the callee; ``json`` is sent as a JSON:API document. The
        callee's response when it succeeded; otherwise the core error described above."""
        method = method.upper()
        body = None if json is None else jsonlib.dumps(json, separators=(",", ":")).encode()
        call = _Call(method, path)
        attributes = {"http.request.method": method, "peer.service": self.callee, "url.path": path}
        with span(method, kind="client", attributes=attributes) as call_span:
            try:
                response = await self._exchange(call, params, body, headers or {})
            except BaseException as exception:  # cancelled: the line still tells
                call.failure = type(exception).__name__
                call.log(self.callee, failed=True)
                raise
            if response is not None:
                call_span.set_attribute("http.response.status_code", response.status_code)
            error = self._error_for(response)
            failed = error is not None and error.status >= 500
            if error is not None and failed:
                call_span.fail(error.title)
            call.log(self.callee, failed=failed)
        if error is not None:
            raise error
        assert response is not None  # noqa: S101 - no error means an answer
        return response

    async def _exchange(
        self, call: _Call, params: Params | None, body: bytes | None, headers: Mapping[str, str]
    ) -> httpx.Response | None:
        """The callee's last answer, or ``None`` when none came in time."""
        settings = self.client_settings
        retried = call.method in IDEMPOTENT_METHODS
        deadline = time.monotonic() + settings.total_timeout
        renewed = False
        while True:
            call.attempts += 1
            response = await self._attempt(call, params, body, headers, deadline)
            if response is not None and response.status_code == 401 and not renewed:
                # Refused before the callee did anything: any method may go again, once.
                self.tokens.forget(self.callee)
                renewed = True
                continue
            if response is not None and response.status_code not in _RETRIED_STATUSES:
                return response
            wait: float | None = _retry_after(response)
            if wait is None:  # exponential, with full jitter
                ceiling = settings.backoff_seconds * 2 ** (call.attempts - 1)
                wait = random.uniform(0, ceiling)  # noqa: S311 - jitter, not a secret
            last = not retried or call.attempts > settings.retries
            if last or time.monotonic() + wait >= deadline:
                return response
            await anyio.sleep(wait)

    async def _attempt(
        self,
        call: _Call,
        params: Params | None,
        body: bytes | None,
        headers: Mapping[str, str],
        deadline: float,
    ) -> httpx.Response | None:
        """One request to the callee, or ``None`` when it failed to answer before ``deadline``."""
        sent = {**headers, **trace_headers()}
        sent["Authorization"] = f"Bearer {self.tokens.token_for(self.callee)}"
        request_id = current_request_id()
        if request_id is not None:
            sent["X-Request-ID"] = request_id
        if body is not None:
            sent["Content-Type"] = JSONAPI_MEDIA_TYPE
        try:
            with anyio.fail_after(max(deadline - time.monotonic(), 0)):
                response = await self._http.request(
                    call.method, call.path, params=params, content=body, headers=sent
                )
        except self._unanswered as error:
            call.status, call.failure = None, type(error).__name__
            return None
        call.status = response.status_code
        call.failure = None
        return response

    def _error_for(self, response: httpx.Response | None) -> SmplkitError | None:
        """The core error the caller gets for the callee's last answer; ``None`` for a success."""
        if response is None:
            return _unavailable(DEFAULT_RETRY_AFTER)
        status = response.status_code
        if status < 400:
            return None
        if status in _RETRIED_STATUSES:
            return _unavailable(_retry_after(response) or DEFAULT_RETRY_AFTER)
        if status >= 500 or status == 401:
            return error_from_status(502, _FAILED_DETAIL)
        error = error_from_status(status)
        callee_error = _first_error(response)
        error.detail = callee_error.get("detail") or error.detail
        error.code = callee_error.get("code") or error.code
        return error


class _Call:
    """What the call line says about one call."""

    __slots__ = ("attempts", "failure", "method", "path", "started", "status")

    def __init__(self, method: str, path: str) -> None:
        self.method = method
        self.path = path
        self.attempts = 0
        self.status: int | None = None
        self.failure: str | None = None
        self.started = time.perf_counter()

    def log(self, callee: str, *, failed: bool) -> None:
        fields: dict[str, Any] = {
            "callee": callee,
            "method": self.method,
            "path": self.path,
            "status": self.status,
            "duration_ms": round((time.perf_counter() - self.started) * 1000, 3),
            "attempts": self.attempts,
        }
        if self.failure is not None:
            fields["failure"] = self.failure
        fields[JSON_MEMBERS] = call_metrics(failed=failed)
        _logger.log(logging.WARNING if failed else logging.INFO, "call", extra=fields)


def _unavailable(retry_after: int) -> ServiceUnavailableError:
    return ServiceUnavailableError(_UNAVAILABLE_DETAIL, headers={"Retry-After": str(retry_after)})


def _retry_after(response: httpx.Response | None) -> int | None:
    """The callee's ``Retry-After`` in whole seconds (delay or HTTP date), if it sent one."""
    value = None if response is None else response.headers.get("retry-after")
    if not value:
        return None
    if value.strip().isdigit():
        return int(value)
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0, round(moment.timestamp() - time.time()))


def _first_error(response: httpx.Response) -> dict[str, str]:
    """The first error object of a JSON:API error document; empty for any other body."""
    try:
        errors = response.json().get("errors")
        first = errors[0]
    except (ValueError, AttributeError, TypeError, IndexError, KeyError):
        return {}
    if not isinstance(first, dict):
        return {}
    return {key: value for key, value in first.items() if isinstance(value, str)}
