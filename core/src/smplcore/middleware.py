"""The request-context middleware: the core's one pure-ASGI layer on every request.

It sits on every request's path, so each step is chosen for its cost: one pass over the request
headers, no Starlette ``Request`` object, a cached token verification, and a request log line
formatted by hand (:func:`smplcore.logging.log_request`).
"""

from __future__ import annotations

import json
import logging
import random
import re
import time
from collections.abc import Collection
from typing import Final

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from smplcore._context import RequestContext, request_context
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
from smplcore.logging import log_request

__all__ = ["REQUEST_ID_HEADER", "RequestContextMiddleware"]

REQUEST_ID_HEADER: Final = "X-Request-ID"
_MAX_REQUEST_ID_LENGTH: Final = 128
_random_bits = random.getrandbits  # ids for correlation, not secrets: no syscall per request
_SANE_REQUEST_ID = re.compile(rb"[A-Za-z0-9._-]{1,%d}" % _MAX_REQUEST_ID_LENGTH)

_JSONAPI = JSONAPI_MEDIA_TYPE.encode()
_JSON = b"application/json"
_MENTIONS_JSONAPI = re.compile(rb"vnd\.api\+json", re.IGNORECASE).search
_CONTENT_TYPE = b"content-type"
_AUTHORIZATION = b"authorization"
_REQUEST_ID = REQUEST_ID_HEADER.lower().encode()
_ACCEPT = b"accept"
_SEMICOLON = ord(";")  # `int in bytes` is a memchr; `bytes in bytes` costs ten times more
_exception_logger = logging.getLogger("smplcore.request")
_error_body = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode


class RequestContextMiddleware:
    """Pure ASGI middleware on every HTTP request.

    - request id: a sane ``X-Request-ID`` (1-128 chars of ``[A-Za-z0-9._-]``) is reused, any
      other value replaced by a generated one; echoed on every response, errors included;
      reachable by every log line written meanwhile (:func:`smplcore.current_request_id`);
    - JSON:API content negotiation: 415 for a Content-Type of the JSON:API media type with
      parameters, 406 for an Accept that lists it only with parameters;
    - with an :class:`~smplcore.auth.AccessPolicy` (and the app's ``verifier``): 401 unless
      the request carries the token its path needs; the verified caller is recorded for the
      auth dependencies and the request line;
    - ``application/json`` responses are sent as ``application/vnd.api+json`` (except the
      paths in ``json_paths``, e.g. the OpenAPI document), which keeps FastAPI's fast
      ``response_model`` serialization;
    - an unhandled exception is logged with the request id and becomes a JSON:API 500
      without any exception text;
    - one ``request`` log line at the end: request id, account id or calling service (when
      authenticated), method, path, status, duration.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        json_paths: Collection[str] = (),
        access: AccessPolicy | None = None,
        verifier: TokenVerifier | None = None,
    ) -> None:
        if (access is None) != (verifier is None):
            raise ValueError("an access policy needs the verifier that checks its tokens")
        self.app = app
        self.json_paths = frozenset(json_paths)
        self.access = access
        self.verifier = verifier

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        start = time.perf_counter()
        request_id, authorization, refusal = _read_headers(scope["headers"])
        request_id_header = (_REQUEST_ID, request_id.encode("ascii"))
        context = RequestContext(request_id)
        token = request_context.set(context)
        path: str = scope["path"]
        access, verifier = self.access, self.verifier
        if (
            refusal is None
            and access is not None
            and verifier is not None
            and path not in access.public_paths
        ):
            refusal = _authenticate(access, verifier, context, path, authorization)
        rewrite = path not in self.json_paths
        status = 0  # until the response starts

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = message.get("headers")
                if type(headers) is not list:
                    headers = message["headers"] = list(headers or ())
                _rewrite_headers(headers, request_id_header, rewrite=rewrite)
            await send(message)

        try:
            if refusal is not None:
                await _send_error(send_wrapper, refusal)
            else:
                await self.app(scope, receive, send_wrapper)
        except Exception:
            _exception_logger.exception(
                "unhandled exception while handling %s %s", scope["method"], path
            )
            if status:  # the response has started: too late for a 500 of ours
                raise
            await _send_error(send_wrapper, InternalServerError(GENERIC_500_DETAIL))
        finally:
            log_request(scope, context, status or 500, time.perf_counter() - start)
            request_context.reset(token)


def _authenticate(
    access: AccessPolicy,
    verifier: TokenVerifier,
    context: RequestContext,
    path: str,
    authorization: bytes | None,
) -> UnauthorizedError | None:
    """Record the caller the path's token proves, or the 401 to answer instead."""
    try:
        if access.is_internal(path):
            context.caller = verifier.caller_for_header(authorization)
        else:
            context.account = verifier.account_for_header(authorization)
    except UnauthorizedError as error:
        return error
    return None


def _read_headers(
    headers: list[tuple[bytes, bytes]],
) -> tuple[str, bytes | None, SmplkitError | None]:
    """The request id (the client's when sane, else a new one), the ``Authorization`` value,
    and the content negotiation's refusal, if any.

    A repeated header counts with its first value, as Starlette's ``Request.headers`` reads it.
    One dict built in C costs less than a Python loop over the headers.
    """
    first = dict(reversed(headers))
    client_id = first.get(_REQUEST_ID)
    if client_id is not None and _SANE_REQUEST_ID.fullmatch(client_id):
        request_id = client_id.decode("ascii")
    else:
        request_id = _random_bits(128).to_bytes(16).hex()
    refusal: SmplkitError | None = None
    content_type = first.get(_CONTENT_TYPE)
    accept = first.get(_ACCEPT)
    # JSON:API 1.0 refuses only media type parameters: a header without ";" is fine unparsed.
    if (
        content_type is not None
        and _SEMICOLON in content_type
        and _parameterized_jsonapi(content_type)
    ):
        refusal = UnsupportedMediaTypeError(
            "The JSON:API media type must be sent without media type parameters",
            header="Content-Type",
        )
    elif accept is not None and _SEMICOLON in accept and _accept_refused(accept):
        refusal = NotAcceptableError(
            "The Accept header lists the JSON:API media type only with media type parameters",
            header="Accept",
        )
    return request_id, first.get(_AUTHORIZATION), refusal


def _parameterized_jsonapi(value: bytes) -> bool:
    """True when a media type is the JSON:API one WITH media type parameters."""
    media_type, _, params = value.partition(b";")
    return media_type.strip().lower() == _JSONAPI and bool(params.strip())


def _accept_refused(accept: bytes) -> bool:
    """True when Accept lists the JSON:API media type only with media type parameters.

    The ``q`` weight is an Accept parameter, not a media type parameter (RFC 9110).
    """
    if not _MENTIONS_JSONAPI(accept):
        return False
    seen = False
    for media_range in accept.split(b","):
        media_type, _, params = media_range.partition(b";")
        if media_type.strip().lower() != _JSONAPI:
            continue
        seen = True
        names = [p.partition(b"=")[0].strip().lower() for p in params.split(b";") if p.strip()]
        if not [name for name in names if name != b"q"]:
            return False
    return seen


def _rewrite_headers(
    headers: list[tuple[bytes, bytes]], request_id_header: tuple[bytes, bytes], *, rewrite: bool
) -> None:
    """In place: JSON becomes JSON:API (when ``rewrite``), and our X-Request-ID is added."""
    stale = False
    for index, (name, value) in enumerate(headers):
        lowered = name.lower()  # a raw ASGI app may send capitalized names
        if lowered == _CONTENT_TYPE:
            if rewrite and value.startswith(_JSON):
                headers[index] = (name, _JSONAPI)
        elif lowered == _REQUEST_ID:
            stale = True
    if stale:  # the app set its own: ours is the one
        headers[:] = [h for h in headers if h[0].lower() != _REQUEST_ID]
    headers.append(request_id_header)


async def _send_error(send: Send, error: SmplkitError) -> None:
    body = _error_body(error_document([error])).encode()
    headers = [
        (_CONTENT_TYPE, _JSONAPI),
        (b"content-length", str(len(body)).encode()),
        *(
            (name.lower().encode("latin-1"), value.encode("latin-1"))
            for name, value in error.headers.items()
        ),
    ]
    await send({"type": "http.response.start", "status": error.status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
