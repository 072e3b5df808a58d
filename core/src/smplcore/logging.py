"""JSON logging.

Every line is one JSON object on stdout with ``timestamp``, ``level``, ``logger``,
``service``, ``event``, the fields passed as ``extra`` and, while a request runs, its
``request_id`` and its caller (``account_id`` or ``caller``). One formatter writes every line:
the request-context middleware's one ``request`` line per request
(:mod:`smplcore.middleware`) goes through stdlib ``logging`` like any other.
"""

from __future__ import annotations

import json
import logging
import sys
import warnings
from datetime import UTC, datetime
from typing import IO, Any, Final

from typing_extensions import deprecated

from smplcore import middleware
from smplcore._context import request_context

__all__ = [
    "JsonFormatter",
    "configure_logging",
    "current_request_id",
    "get_logger",
]


def current_request_id() -> str | None:
    """The id of the request being handled, or ``None`` outside a request."""
    context = request_context.get()
    return None if context is None else context.request_id


_dumps = json.JSONEncoder(default=str, ensure_ascii=False, separators=(",", ":")).encode

_NOT_EXTRA: Final = frozenset(
    {
        *logging.LogRecord("", 0, "", 0, "", (), None).__dict__,
        "message",
        "asctime",
        "taskName",
        # uvicorn repeats its message with ANSI colours for its own console formatter
        "color_message",
    }
)


class JsonFormatter(logging.Formatter):
    """Formats a ``LogRecord`` as one JSON line (``extra`` fields included)."""

    def __init__(self, service_name: str) -> None:
        super().__init__()
        self.service_name = service_name

    def format(self, record: logging.LogRecord) -> str:
        timestamp = datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds")
        event: dict[str, Any] = {
            "timestamp": timestamp.replace("+00:00", "Z"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "service": self.service_name,
            "event": record.getMessage(),
        }
        context = request_context.get()
        if context is not None:
            event["request_id"] = context.request_id
            if context.account is not None:
                event["account_id"] = context.account.account_id
            if context.caller is not None:
                event["caller"] = context.caller.service
        for key, value in record.__dict__.items():
            if key not in _NOT_EXTRA and key not in event:
                event[key] = value
        if record.exc_info:
            event["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            event["stack"] = self.formatStack(record.stack_info)
        return _dumps(event)


class _Stdout:
    """The current ``sys.stdout``, looked up on every write (test runners replace it)."""

    def write(self, text: str) -> None:
        sys.stdout.write(text)

    def flush(self) -> None:
        sys.stdout.flush()


def configure_logging(
    level: str = "INFO", *, service_name: str, stream: IO[str] | None = None
) -> None:
    """JSON lines on stdout (or ``stream``) for every stdlib logger.

    Idempotent: calling it again replaces the previous configuration. Uvicorn's loggers
    go through the same handler, and its access log is silenced (the request-context
    middleware writes one line per request instead). When the service has imported
    structlog, structlog's loggers are routed through the same handler too.
    """
    root = logging.getLogger()
    root.setLevel(level.upper())  # ValueError for an unknown level
    for handler in list(root.handlers):
        if isinstance(handler.formatter, JsonFormatter):
            root.removeHandler(handler)
    handler = logging.StreamHandler(stream or _Stdout())
    handler.setFormatter(JsonFormatter(service_name))
    root.addHandler(handler)
    for name in ("uvicorn", "uvicorn.error"):
        uvicorn_logger = logging.getLogger(name)
        uvicorn_logger.handlers.clear()
        uvicorn_logger.propagate = True
    access = logging.getLogger("uvicorn.access")
    access.handlers.clear()
    access.propagate = False
    access.disabled = True
    if "structlog" in sys.modules:
        _route_structlog()


def _route_structlog() -> None:
    """structlog's events become stdlib records: the key-value pairs are their ``extra``."""
    import structlog  # noqa: PLC0415 - an optional dependency of the service, not of the core

    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.stdlib.filter_by_level,
            structlog.processors.StackInfoRenderer(),
            structlog.stdlib.render_to_log_kwargs,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=False,
    )


@deprecated("use logging.getLogger(name); structlog is no longer a dependency (removed in 2.0)")
def get_logger(name: str | None = None, **initial_values: Any) -> Any:
    """A structlog logger whose lines :func:`configure_logging`'s formatter writes.

    Needs structlog, which the service must now declare itself.
    """
    try:
        import structlog  # noqa: PLC0415
    except ImportError:
        raise ImportError(
            "smplcore.logging.get_logger needs structlog, which smplkit-core no longer "
            "installs: add structlog to the service's dependencies, or use logging.getLogger"
        ) from None
    _route_structlog()
    if name is None:
        return structlog.stdlib.get_logger(**initial_values)
    return structlog.stdlib.get_logger(name, **initial_values)


def __getattr__(name: str) -> Any:
    """The names that lived here until 1.1.0 still work, with a DeprecationWarning."""
    if name in {"REQUEST_ID_HEADER", "RequestContextMiddleware"}:
        warnings.warn(
            f"smplcore.logging.{name} is deprecated: import it from smplcore.middleware "
            "(removed in 2.0)",
            DeprecationWarning,
            stacklevel=2,
        )
        return getattr(middleware, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
