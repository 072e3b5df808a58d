"""JSON logging.

Every line is one JSON object on stdout with ``timestamp``, ``level``, ``logger``,
``service``, ``event``, the fields passed as ``extra``, while a request runs, its
``request_id`` and its caller (``account_id`` or ``caller``) and, while tracing is on (see
:mod:`smplcore.telemetry`), the ``trace_id`` and ``span_id`` of the current span. One
formatter writes every line, the request-context middleware's one ``request`` line per request
included (written by :mod:`smplcore._log_lines`, below the middleware).
"""

from __future__ import annotations

import logging
import sys
import warnings
from typing import IO, Any

from typing_extensions import deprecated

from smplcore._context import request_context
from smplcore._log_lines import JsonFormatter, installed, set_trace_members

__all__ = [
    "JsonFormatter",
    "configure_logging",
    "current_request_id",
    "get_logger",
    "set_trace_members",
]


def current_request_id() -> str | None:
    """The id of the request being handled, or ``None`` outside a request."""
    context = request_context.get()
    return None if context is None else context.request_id


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
    middleware writes one line per request instead), as is httpx's line per request (the
    internal client writes its own). When the service has imported
    structlog, structlog's loggers are routed through the same handler too.
    """
    root = logging.getLogger()
    root.setLevel(level.upper())  # ValueError for an unknown level
    for handler in list(root.handlers):
        if isinstance(handler.formatter, JsonFormatter):
            root.removeHandler(handler)
    formatter = JsonFormatter(service_name)
    handler = logging.StreamHandler(stream or _Stdout())
    handler.setFormatter(formatter)
    root.addHandler(handler)
    installed.handler, installed.formatter = handler, formatter
    for name in ("uvicorn", "uvicorn.error"):
        uvicorn_logger = logging.getLogger(name)
        uvicorn_logger.handlers.clear()
        uvicorn_logger.propagate = True
    access = logging.getLogger("uvicorn.access")
    access.handlers.clear()
    access.propagate = False
    access.disabled = True
    # httpx's own line per request says less than smplcore.client's call line
    logging.getLogger("httpx").setLevel(logging.WARNING)
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
        from smplcore import middleware  # noqa: PLC0415 - deprecated: a module above this one

        return getattr(middleware, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
