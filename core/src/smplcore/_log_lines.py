"""The JSON log line: the one formatter every line goes through, and the request-context
middleware's ``request`` line written through it directly.

Below everything that logs: :mod:`smplcore.logging` configures it (and is the public home of
:class:`JsonFormatter`), the middleware and :mod:`smplcore.telemetry` write and decorate its
lines.
"""

from __future__ import annotations

import functools
import logging
import time
from _json import encode_basestring, make_encoder
from collections.abc import Callable
from typing import Any, Final

from smplcore._context import RequestContext, request_context

# The C encoder json.dumps runs, built once rather than on every line (as json.dumps does): with
# the line's fixed members formatted once per logger, a request line costs half as much (bench:
# load, the core's figure).
_encode = make_encoder(None, str, encode_basestring, None, ":", ",", False, False, True)
_LINE_MEMBERS: Final = frozenset({"timestamp", "level", "logger", "service", "event"})
_TRACE_MEMBERS: Final = frozenset({"trace_id", "span_id"})
_MEMBERS: Final = _LINE_MEMBERS | _TRACE_MEMBERS | {"request_id", "account_id", "caller"}
"""What a line can hold before its fields: a field of the same name is left out."""
JSON_MEMBERS: Final = "json_members"

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
    """Formats a ``LogRecord`` as one JSON line (``extra`` fields included).

    An ``extra`` field named :data:`JSON_MEMBERS` holds members already encoded as JSON
    (``,"name":value``), written after the others as they are.
    """

    def __init__(self, service_name: str) -> None:
        super().__init__()
        self.service_name = service_name
        self._members_of: dict[tuple[str, str], str] = {}

    def format(self, record: logging.LogRecord) -> str:
        fields = {k: v for k, v in record.__dict__.items() if k not in _NOT_EXTRA}
        encoded = fields.pop(JSON_MEMBERS, "")
        if record.exc_info:
            fields["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            fields["stack"] = self.formatStack(record.stack_info)
        message = record.getMessage()
        return self.render(
            record.created, record.levelname, record.name, message, fields, encoded=encoded
        )

    def render(
        self,
        created: float,
        level: str,
        logger: str,
        event: str,
        fields: dict[str, Any],
        *,
        encoded: str = "",
    ) -> str:
        """The JSON line: the standard members, the request's, then ``fields`` (those named like
        a standard member are left out), then the ``encoded`` members."""
        milliseconds = int(created * 1000)
        line = (
            f'{{"timestamp":"{_utc_second(milliseconds // 1000)}.{milliseconds % 1000:03d}Z"'
            f"{self._logger_members(level, logger)}{encode_basestring(event)}"
        )
        context = request_context.get()
        if context is not None:
            line += f',"request_id":{encode_basestring(context.request_id)}'
            if context.account is not None:
                line += f',"account_id":{encode_basestring(context.account.account_id)}'
            if context.caller is not None:
                line += f',"caller":{encode_basestring(context.caller.service)}'
        trace_members = installed.trace_members
        traced = ""
        if trace_members is not None:
            traced = trace_members()
            line += traced
        if not _MEMBERS.isdisjoint(fields):
            written = _members_written(context)
            if traced:
                written |= _TRACE_MEMBERS
            fields = {k: v for k, v in fields.items() if k not in written}
        if fields:
            line += f",{''.join(_encode(fields, 0))[1:-1]}"
        return f"{line}{encoded}}}"

    def _logger_members(self, level: str, logger: str) -> str:
        """``,"level":...,"logger":...,"service":...,"event":``, formatted once per logger."""
        members = self._members_of.get((level, logger))
        if members is None:
            members = self._members_of[level, logger] = (
                f',"level":{encode_basestring(level.lower())},"logger":{encode_basestring(logger)}'
                f',"service":{encode_basestring(self.service_name)},"event":'
            )
        return members


def _members_written(context: RequestContext | None) -> frozenset[str]:
    """The members a line holds before its fields, while ``context``'s request runs."""
    if context is None:
        return _LINE_MEMBERS
    written = {"request_id"}
    if context.account is not None:
        written.add("account_id")
    if context.caller is not None:
        written.add("caller")
    return _LINE_MEMBERS | written


_request_logger = logging.getLogger("smplcore.request")


class Installed:
    """The handler :func:`smplcore.logging.configure_logging` installed (none before it is
    called)."""

    handler: logging.StreamHandler[Any] | None = None
    formatter: JsonFormatter | None = None
    trace_members: Callable[[], str] | None = None
    """The current span's ids as members of a line, while tracing is on."""


installed = Installed()


def log_request(fields: dict[str, Any], *, error: bool, encoded: str = "") -> None:
    """Write the middleware's one ``request`` line, as ``smplcore.request`` at INFO (ERROR for
    a 5xx), with the members already ``encoded`` as JSON last.

    Rendered by the same :class:`JsonFormatter` as every line, but written to its handler
    directly: a ``LogRecord`` and the handler chain cost 145k instructions per request, 37 %
    of a bare FastAPI request (bench core-costs, measured with callgrind), for nothing a
    request line needs.
    """
    level = logging.ERROR if error else logging.INFO
    handler, formatter = installed.handler, installed.formatter
    if handler is None or formatter is None:  # logging is not configured: the standard way
        _request_logger.log(level, "request", extra={**fields, JSON_MEMBERS: encoded})
    elif _request_logger.isEnabledFor(level):
        name = logging.getLevelName(level)
        now = time.time()
        line = formatter.render(now, name, _request_logger.name, "request", fields, encoded=encoded)
        handler.stream.write(line + "\n")
        handler.stream.flush()


def set_trace_members(members: Callable[[], str] | None) -> None:
    """What every line adds after the request's members: ``members()`` (``,"trace_id":...``),
    or nothing (``None``). :func:`smplcore.telemetry.start_telemetry` sets it."""
    installed.trace_members = members


@functools.lru_cache(maxsize=1)
def _utc_second(second: int) -> str:
    """``2025-01-31T12:00:00``: formatted once a second, not per line, which saves 15k
    instructions per request line, 4 % of a bare request (bench core-costs, callgrind)."""
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
