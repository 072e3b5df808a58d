"""JSON logging and the request-context middleware.

Every line is one JSON object on stdout with ``timestamp``, ``level``, ``logger``,
``service``, ``event`` and, while a request runs, its ``request_id`` (stdlib ``logging``
and ``structlog`` alike). The middleware writes one ``request`` line per request.
"""

from __future__ import annotations

import json
import logging
import random
import re
import sys
import time
from collections.abc import Callable, Collection, MutableMapping
from datetime import UTC, datetime
from typing import IO, Any, Final

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from smplcore._context import RequestContext, request_context
from smplcore.errors import (
    GENERIC_500_DETAIL,
    InternalServerError,
    NotAcceptableError,
    SmplkitError,
    UnsupportedMediaTypeError,
    error_document,
)
from smplcore.jsonapi import JSONAPI_MEDIA_TYPE

__all__ = [
    "REQUEST_ID_HEADER",
    "RequestContextMiddleware",
    "configure_logging",
    "current_request_id",
    "get_logger",
]

REQUEST_ID_HEADER: Final = "X-Request-ID"
_MAX_REQUEST_ID_LENGTH: Final = 128
_random_bits = random.getrandbits  # ids for correlation, not secrets: no syscall per request
_SANE_REQUEST_ID = re.compile(rb"[A-Za-z0-9._-]{1,%d}" % _MAX_REQUEST_ID_LENGTH)


def current_request_id() -> str | None:
    """The id of the request being handled, or ``None`` outside a request."""
    context = request_context.get()
    return None if context is None else context.request_id


# ---------------------------------------------------------------------------- output


class _Sink:
    """A file-like proxy: writes to the configured stream, or to the current ``sys.stdout``."""

    def __init__(self) -> None:
        self.stream: IO[str] | None = None

    def write(self, text: str) -> None:
        (self.stream or sys.stdout).write(text)

    def flush(self) -> None:
        (self.stream or sys.stdout).flush()


_sink = _Sink()
_state: dict[str, Any] = {"service": "unknown", "service_json": '"unknown"', "level": logging.INFO}
_json_str: Callable[[str], str] = json.encoder.encode_basestring


_clock: list[Any] = [-1, ""]  # [whole second, its ISO 8601 prefix]: formatted once a second


def _timestamp() -> str:
    """UTC ISO 8601 with milliseconds, e.g. ``2025-01-31T12:00:00.123Z`` (cheap: per request)."""
    now = time.time()
    second = int(now)
    if second != _clock[0]:
        _clock[1] = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        _clock[0] = second
    return f"{_clock[1]}.{int((now - second) * 1000):03d}Z"


_dumps = json.JSONEncoder(default=str, ensure_ascii=False, separators=(",", ":")).encode


_STANDARD_RECORD_ATTRS: Final = frozenset(
    {
        *logging.LogRecord("", 0, "", 0, "", (), None).__dict__,
        "message",
        "asctime",
        "taskName",
    }
)


class JsonFormatter(logging.Formatter):
    """Formats a stdlib ``LogRecord`` as one JSON line (``extra`` fields included)."""

    def format(self, record: logging.LogRecord) -> str:
        event: dict[str, Any] = {
            "timestamp": datetime.fromtimestamp(record.created, UTC)
            .isoformat(timespec="milliseconds")
            .replace("+00:00", "Z"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "service": _state["service"],
            "event": record.getMessage(),
        }
        context = request_context.get()
        if context is not None:
            event["request_id"] = context.request_id
            if context.account_id is not None:
                event["account_id"] = context.account_id
        for key, value in record.__dict__.items():
            if key not in _STANDARD_RECORD_ATTRS and key not in event:
                event[key] = value
        if record.exc_info:
            event["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            event["stack"] = self.formatStack(record.stack_info)
        return _dumps(event)


class _JsonLineLogger:
    """The structlog logger: writes rendered lines to the sink; remembers its name."""

    __slots__ = ("name",)

    def __init__(self, name: str | None) -> None:
        self.name = name

    def msg(self, message: str) -> None:
        _sink.write(message + "\n")
        _sink.flush()

    log = debug = info = warn = warning = err = error = critical = exception = fatal = msg


def _logger_factory(*args: Any) -> _JsonLineLogger:
    return _JsonLineLogger(str(args[0]) if args else None)


def _add_core_fields(
    logger: Any, method_name: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    event_dict.setdefault("timestamp", _timestamp())
    event_dict.setdefault("level", "warning" if method_name == "warn" else method_name)
    name = getattr(logger, "name", None)
    if name:
        event_dict.setdefault("logger", name)
    event_dict.setdefault("service", _state["service"])
    context = request_context.get()
    if context is not None:
        event_dict.setdefault("request_id", context.request_id)
        if context.account_id is not None:
            event_dict.setdefault("account_id", context.account_id)
    return event_dict


def _log_level_number(level: str) -> int:
    number = logging.getLevelNamesMapping().get(level.upper())
    if number is None:
        raise ValueError(f"unknown log level {level!r}")
    return number


def configure_logging(
    level: str = "INFO", *, service_name: str, stream: IO[str] | None = None
) -> None:
    """JSON lines on stdout (or ``stream``) for stdlib ``logging`` and ``structlog``.

    Idempotent: calling it again replaces the previous configuration. Uvicorn's loggers
    go through the same handler, and its access log is silenced (the request-context
    middleware writes one line per request instead). structlog is configured now when the
    service has imported it, else on the first :func:`get_logger` call (importing it costs
    start-up time that a service logging through stdlib ``logging`` need not pay).
    """
    number = _log_level_number(level)
    _state["service"] = service_name
    _state["service_json"] = _json_str(service_name)
    _state["level"] = number
    _sink.stream = stream

    root = logging.getLogger()
    for handler in list(root.handlers):
        if getattr(handler, "_smplcore", False):
            root.removeHandler(handler)
    handler = logging.StreamHandler(_sink)
    handler.setFormatter(JsonFormatter())
    handler._smplcore = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(number)
    for name in ("uvicorn", "uvicorn.error"):
        uvicorn_logger = logging.getLogger(name)
        uvicorn_logger.handlers.clear()
        uvicorn_logger.propagate = True
    access = logging.getLogger("uvicorn.access")
    access.handlers.clear()
    access.propagate = False
    access.disabled = True

    if "structlog" in sys.modules:  # imported by the service: configure it now
        _configure_structlog()
    else:  # else on first use of get_logger (structlog costs import time)
        _state["structlog_configured"] = False


def _configure_structlog() -> None:
    import structlog  # noqa: PLC0415

    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            _add_core_fields,
            structlog.processors.StackInfoRenderer(),
            structlog.processors.format_exc_info,
            structlog.processors.JSONRenderer(
                default=str, ensure_ascii=False, separators=(",", ":")
            ),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(_state["level"]),
        logger_factory=_logger_factory,
        cache_logger_on_first_use=False,
    )
    _state["structlog_configured"] = True


def get_logger(name: str | None = None, **initial_values: Any) -> Any:
    """A structlog logger configured by :func:`configure_logging` (``logger`` = ``name``).

    ``structlog.get_logger(__name__)`` works the same way once logging is configured.
    """
    import structlog  # noqa: PLC0415

    if _state.get("structlog_configured") is False:
        _configure_structlog()
    if name is None:
        return structlog.get_logger(**initial_values)
    return structlog.get_logger(name, **initial_values)


# ---------------------------------------------------------------------------- middleware

_JSONAPI = JSONAPI_MEDIA_TYPE.encode()
_JSON = b"application/json"
_MENTIONS_JSONAPI = re.compile(rb"vnd\.api\+json", re.IGNORECASE).search
_CONTENT_TYPE = b"content-type"
_REQUEST_ID_HEADER = REQUEST_ID_HEADER.lower().encode()
_exception_logger = logging.getLogger("smplcore.request")


def _parameterized_jsonapi(value: bytes) -> bool:
    """True when a media type is the JSON:API one WITH media type parameters."""
    if b";" not in value:
        return False
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


_NEGOTIATED = frozenset({_CONTENT_TYPE, b"accept"})


def _negotiation_error(name: bytes, value: bytes) -> SmplkitError | None:
    """The 415/406 that JSON:API 1.0 content negotiation demands for this header, if any."""
    if name == _CONTENT_TYPE:
        if _parameterized_jsonapi(value):
            return UnsupportedMediaTypeError(
                "The JSON:API media type must be sent without media type parameters",
                header="Content-Type",
            )
    elif _accept_refused(value):
        return NotAcceptableError(
            "The Accept header lists the JSON:API media type only with media type parameters",
            header="Accept",
        )
    return None


def _rewrite_headers(
    headers: list[tuple[bytes, bytes]], request_id_header: tuple[bytes, bytes], *, rewrite: bool
) -> None:
    """In place: JSON becomes JSON:API (when ``rewrite``), and our X-Request-ID is added."""
    stale = False
    for index, (name, value) in enumerate(headers):
        lowered = name.lower()
        if lowered == _CONTENT_TYPE:
            if rewrite and value.startswith(_JSON):
                headers[index] = (name, _JSONAPI)
        elif lowered == _REQUEST_ID_HEADER:
            stale = True
    if stale:  # the app set its own: ours is the one
        headers[:] = [h for h in headers if h[0].lower() != _REQUEST_ID_HEADER]
    headers.append(request_id_header)


class RequestContextMiddleware:
    """Pure ASGI middleware on every HTTP request.

    - request id: a sane ``X-Request-ID`` (1-128 chars of ``[A-Za-z0-9._-]``) is reused, any
      other value replaced by a generated one; echoed on every response, errors included;
      reachable by every log line written meanwhile (:func:`current_request_id`);
    - JSON:API content negotiation: 415 for a Content-Type of the JSON:API media type with
      parameters, 406 for an Accept that lists it only with parameters;
    - ``application/json`` responses are sent as ``application/vnd.api+json`` (except the
      paths in ``json_paths``, e.g. the OpenAPI document), which keeps FastAPI's fast
      ``response_model`` serialization;
    - an unhandled exception is logged with the request id and becomes a JSON:API 500
      without any exception text;
    - one ``request`` log line at the end: request id, account id (when authenticated),
      method, path, status, duration.
    """

    def __init__(self, app: ASGIApp, *, json_paths: Collection[str] = ()) -> None:
        self.app = app
        self.json_paths = frozenset(json_paths)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        start = time.perf_counter()
        request_id: str | None = None
        refusal: SmplkitError | None = None
        for name, value in scope["headers"]:  # one pass: request id and negotiation
            if name == _REQUEST_ID_HEADER:
                if request_id is None and _SANE_REQUEST_ID.fullmatch(value):
                    request_id = value.decode("ascii")
            elif refusal is None and name in _NEGOTIATED:
                refusal = _negotiation_error(name, value)
        if request_id is None:
            request_id = f"{_random_bits(128):032x}"
        request_id_header = (_REQUEST_ID_HEADER, request_id.encode("ascii"))
        context = RequestContext(request_id)
        token = request_context.set(context)
        rewrite = scope["path"] not in self.json_paths
        status = 500
        response_started = False

        async def send_wrapper(message: Message) -> None:
            nonlocal status, response_started
            if message["type"] == "http.response.start":
                response_started = True
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
                "unhandled exception while handling %s %s", scope["method"], scope["path"]
            )
            if response_started:
                raise
            status = 500
            await _send_error(send_wrapper, InternalServerError(GENERIC_500_DETAIL))
        finally:
            _log_request(scope, context, status, time.perf_counter() - start)
            request_context.reset(token)


def _log_request(scope: Scope, context: RequestContext, status: int, seconds: float) -> None:
    """Write the one ``request`` line.

    Formatted by hand, not through ``json``: it is on every request's path. The request id
    is already restricted to ``[A-Za-z0-9._-]``; every other string is JSON-escaped.
    """
    error = status >= 500
    if _state["level"] > (logging.ERROR if error else logging.INFO):
        return
    extra = ""
    if context.account_id is not None:
        extra += f',"account_id":{_json_str(context.account_id)}'
    if context.caller is not None:
        extra += f',"caller":{_json_str(context.caller)}'
    _sink.write(
        f'{{"timestamp":"{_timestamp()}","level":"{"error" if error else "info"}",'
        f'"logger":"smplcore.request","service":{_state["service_json"]},"event":"request",'
        f'"request_id":"{context.request_id}","method":{_json_str(scope["method"])},'
        f'"path":{_json_str(scope["path"])},"status":{status},'
        f'"duration_ms":{seconds * 1000:.3f}{extra}}}\n'
    )
    _sink.flush()


async def _send_error(send: Send, error: SmplkitError) -> None:
    body = _dumps(error_document([error])).encode()
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
