"""The request-context middleware: the core's one pure-ASGI layer on every request."""

from __future__ import annotations

import json
import logging
import re
import secrets
import time
from collections.abc import Collection, Iterable
from typing import TYPE_CHECKING, Final

from fastapi import FastAPI
from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from smplcore._context import RequestContext, request_context
from smplcore._dispatch import RouteTable
from smplcore._log_lines import log_request
from smplcore.auth import AccessPolicy, TokenVerifier
from smplcore.errors import (
    GENERIC_500_DETAIL,
    InternalServerError,
    NotAcceptableError,
    SmplkitError,
    UnauthorizedError,
    UnsupportedMediaTypeError,
    error_document,
)
from smplcore.jsonapi import JSONAPI_MEDIA_TYPE

if TYPE_CHECKING:
    from smplcore.telemetry import RequestTelemetry

__all__ = ["REQUEST_ID_HEADER", "RequestContextMiddleware"]

REQUEST_ID_HEADER: Final = "X-Request-ID"
_SANE_REQUEST_ID = re.compile(rb"[A-Za-z0-9._-]{1,128}")
_REQUEST_ID = REQUEST_ID_HEADER.lower().encode()
_JSONAPI = JSONAPI_MEDIA_TYPE.encode()
_exception_logger = logging.getLogger("smplcore.request")


class RequestContextMiddleware:
    """Pure ASGI middleware on every HTTP request.

    - request id: a sane ``X-Request-ID`` (1-128 chars of ``[A-Za-z0-9._-]``) is reused, any
      other value replaced by a generated one; echoed on every response, errors included;
      reachable by every log line written meanwhile (:func:`smplcore.current_request_id`);
    - JSON:API content negotiation: 415 for a Content-Type of the JSON:API media type with
      parameters, 406 for an Accept that lists it only with parameters;
    - with an :class:`~smplcore.auth.AccessPolicy` (and the app's ``verifier``): 401 unless
      the request carries the token its path needs, before the app reads the body; the
      verified caller is recorded for the auth dependencies and the log lines;
    - ``application/json`` responses are sent as ``application/vnd.api+json`` (except the
      paths in ``json_paths``, e.g. the OpenAPI document), which keeps FastAPI's own
      ``response_model`` serialization;
    - an unhandled exception is logged with the request id and becomes a JSON:API 500
      without any exception text;
    - one ``request`` log line at the end: request id, account id or calling service (when
      authenticated), method, path, status, duration;
    - with ``telemetry`` (:func:`smplcore.telemetry.start_telemetry`'s): a span around the
      request, named by its route template, and the request line's metrics.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        json_paths: Collection[str] = (),
        access: AccessPolicy | None = None,
        verifier: TokenVerifier | None = None,
        telemetry: RequestTelemetry | None = None,
    ) -> None:
        if (access is None) != (verifier is None):
            raise ValueError("an access policy needs the verifier that checks its tokens")
        self.app = app
        self.json_paths = frozenset(json_paths)
        self.access = access
        self.verifier = verifier
        self.telemetry = telemetry
        self._routes: RouteTable | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        start = time.perf_counter()
        # One dict, not Starlette's Headers: four Headers lookups cost 39k instructions, 10 % of
        # a bare request (bench core-costs, callgrind). The first of repeated headers counts,
        # as in Headers.
        headers = dict(reversed(scope["headers"]))
        client_id = headers.get(_REQUEST_ID, b"")
        sane = _SANE_REQUEST_ID.fullmatch(client_id)
        request_id = client_id.decode() if sane else secrets.token_hex(16)
        request_id_header = (_REQUEST_ID, request_id.encode())
        context = RequestContext(request_id)
        token = request_context.set(context)
        telemetry = self.telemetry
        span = (
            None
            if telemetry is None
            else telemetry.request_started(scope["method"], headers, context)
        )
        path: str = scope["path"]
        refusal = _negotiation_refusal(headers) or self._authentication_refusal(
            path, headers, context
        )
        rewrite = path not in self.json_paths
        status = 0  # until the response starts

        async def send_with_context(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = _response_headers(
                    message.get("headers", ()), request_id_header, rewrite=rewrite
                )
            await send(message)

        try:
            if refusal is not None:
                await _send_error(send_with_context, refusal)
            else:
                await self._serve(scope, receive, send_with_context)
        except Exception:
            _exception_logger.exception(
                "unhandled exception while handling %s %s", scope["method"], path
            )
            if status:  # the response has started: too late for a 500 of ours
                raise
            await _send_error(send_with_context, InternalServerError(GENERIC_500_DETAIL))
        finally:
            status = status or 500
            fields = {
                "method": scope["method"],
                "path": path,
                "status": status,
                "duration_ms": round((time.perf_counter() - start) * 1000, 3),
            }
            if telemetry is None:
                log_request(fields, error=status >= 500)
            else:
                telemetry.request_finished(span, scope, fields)
            request_context.reset(token)

    async def _serve(self, scope: Scope, receive: Receive, send: Send) -> None:
        """The core's own handler where a route of its route class has one, else the app."""
        routes = self._routes
        if routes is None:
            app = scope.get("app")
            if not isinstance(app, FastAPI):
                await self.app(scope, receive, send)
                return
            routes = self._routes = RouteTable.of(app)
        matched = routes.match(scope)
        if matched is None:
            await self.app(scope, receive, send)
            return
        handler, path_params = matched
        unserved = await handler(scope, receive, send, path_params)
        if unserved is not None:
            await self.app(scope, unserved.replay(receive), send)

    def _authentication_refusal(
        self, path: str, headers: dict[bytes, bytes], context: RequestContext
    ) -> UnauthorizedError | None:
        """Record the caller the path's token proves, or the 401 to answer instead."""
        access, verifier = self.access, self.verifier
        if access is None or verifier is None or access.is_public(path):
            return None
        raw = headers.get(b"authorization")
        authorization = None if raw is None else raw.decode("latin-1")
        try:
            if access.is_internal(path):
                context.caller = verifier.caller_of(authorization)
            else:
                context.account = verifier.account_of(authorization)
        except UnauthorizedError as error:
            return error
        return None


def _negotiation_refusal(headers: dict[bytes, bytes]) -> SmplkitError | None:
    """JSON:API 1.0 content negotiation: only media type parameters are refused."""
    content_type = headers.get(b"content-type")
    if content_type is not None and _parameterized_jsonapi(content_type):
        return UnsupportedMediaTypeError(
            "The JSON:API media type must be sent without media type parameters",
            header="Content-Type",
        )
    accept = headers.get(b"accept")
    if accept is not None and _accept_refused(accept):
        return NotAcceptableError(
            "The Accept header lists the JSON:API media type only with media type parameters",
            header="Accept",
        )
    return None


def _parameterized_jsonapi(value: bytes) -> bool:
    """True when a media type is the JSON:API one WITH media type parameters."""
    media_type, _, params = value.partition(b";")
    return media_type.strip().lower() == _JSONAPI and bool(params.strip())


def _accept_refused(accept: bytes) -> bool:
    """True when Accept lists the JSON:API media type only with media type parameters.

    The ``q`` weight is an Accept parameter, not a media type parameter (RFC 9110).
    """
    seen = False
    for media_range in accept.split(b","):
        media_type, _, params = media_range.partition(b";")
        if media_type.strip().lower() != _JSONAPI:
            continue
        seen = True
        names = [p.partition(b"=")[0].strip().lower() for p in params.split(b";") if p.strip()]
        if all(name == b"q" for name in names):
            return False
    return seen


def _response_headers(
    headers: Iterable[tuple[bytes, bytes]], request_id_header: tuple[bytes, bytes], *, rewrite: bool
) -> list[tuple[bytes, bytes]]:
    """The response's headers with our X-Request-ID (replacing the app's own) and, when
    ``rewrite``, a JSON Content-Type as the JSON:API one.

    A loop, not Starlette's MutableHeaders, for the same reason as the request's dict.
    """
    result = []
    for name, value in headers:
        lowered = name.lower()
        if lowered == _REQUEST_ID:
            continue
        json_body = lowered == b"content-type" and value.startswith(b"application/json")
        result.append((name, _JSONAPI if rewrite and json_body else value))
    result.append(request_id_header)
    return result


async def _send_error(send: Send, error: SmplkitError) -> None:
    body = json.dumps(error_document([error]), separators=(",", ":")).encode()
    headers = MutableHeaders(
        {**error.headers, "content-type": JSONAPI_MEDIA_TYPE, "content-length": str(len(body))}
    )
    await send({"type": "http.response.start", "status": error.status, "headers": headers.raw})
    await send({"type": "http.response.body", "body": body})
