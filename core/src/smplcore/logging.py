"""JSON logging.

Every line is one JSON object on stdout with ``timestamp``, ``level``, ``logger``,
``service``, ``event`` and, while a request runs, its ``request_id`` (stdlib ``logging``
and ``structlog`` alike). The request-context middleware (:mod:`smplcore.middleware`) writes
one ``request`` line per request with :func:`log_request`.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import Callable, MutableMapping
from datetime import UTC, datetime
from typing import IO, Any, Final

from starlette.types import Scope

from smplcore._context import RequestContext, request_context

__all__ = [
    "configure_logging",
    "current_request_id",
    "get_logger",
]


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
_state: dict[str, Any] = {"level": logging.INFO}
_json_str: Callable[[str], str] = json.encoder.encode_basestring


def _set_service(name: str) -> None:
    """Every line names the service; the request line's constant middle is formatted here."""
    _state["service"] = name
    for level in ("info", "error"):
        _state[f"request_line_{level}"] = (
            f'","level":"{level}","logger":"smplcore.request",'
            f'"service":{_json_str(name)},"event":"request","request_id":"'
        )


_set_service("unknown")


class _Clock:
    """The current second, and its ISO 8601 form up to the milliseconds' dot."""

    __slots__ = ("prefix", "second")

    def __init__(self) -> None:
        self.second = -1
        self.prefix = ""


_clock = _Clock()
_MILLISECONDS: Final = [f"{millisecond:03d}Z" for millisecond in range(1000)]


def _timestamp() -> str:
    """UTC ISO 8601 with milliseconds, e.g. ``2025-01-31T12:00:00.123Z`` (cheap: per request).

    Formatting is the costly part, so the date and time are formatted once a second and the
    milliseconds come from a table.
    """
    second, millisecond = divmod(time.time_ns() // 1_000_000, 1000)
    if second != _clock.second:
        _clock.prefix = time.strftime("%Y-%m-%dT%H:%M:%S.", time.gmtime(second))
        _clock.second = second
    return _clock.prefix + _MILLISECONDS[millisecond]


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
            if context.account is not None:
                event["account_id"] = context.account.account_id
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
        if context.account is not None:
            event_dict.setdefault("account_id", context.account.account_id)
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
    _set_service(service_name)
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


# ---------------------------------------------------------------------------- the request line


def log_request(scope: Scope, context: RequestContext, status: int, seconds: float) -> None:
    """Write the one ``request`` line.

    Formatted by hand, not through ``json``: it is on every request's path. Everything but the
    timestamp, request id, method, path, status, duration and caller is formatted once, by
    :func:`configure_logging`. The request id is already restricted to ``[A-Za-z0-9._-]``;
    every other string is JSON-escaped.
    """
    error = status >= 500
    if _state["level"] > (logging.ERROR if error else logging.INFO):
        return
    extra = ""
    if context.account is not None:
        extra += f',"account_id":{_json_str(context.account.account_id)}'
    if context.caller is not None:
        extra += f',"caller":{_json_str(context.caller.service)}'
    stream = _sink.stream or sys.stdout
    stream.write(
        f'{{"timestamp":"{_timestamp()}'
        f'{_state["request_line_error" if error else "request_line_info"]}{context.request_id}",'
        f'"method":{_json_str(scope["method"])},"path":{_json_str(scope["path"])},'
        f'"status":{status},"duration_ms":{seconds * 1000:.3f}{extra}}}\n'
    )
    stream.flush()


_MOVED_TO_MIDDLEWARE: Final = frozenset({"REQUEST_ID_HEADER", "RequestContextMiddleware"})


def __getattr__(name: str) -> Any:
    """The names that lived here until 1.1.0 (now in :mod:`smplcore.middleware`) still work."""
    if name in _MOVED_TO_MIDDLEWARE:
        from smplcore import middleware  # noqa: PLC0415 - it imports this module

        return getattr(middleware, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
