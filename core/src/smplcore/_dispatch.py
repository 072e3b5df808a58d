"""The core serving its own route class's routes: FastAPI's generic work, done once per route.

The request-context middleware matches each request against one flat table of the app's routes, in
FastAPI's order (an included router adds no level at request time). A route of a core route class
(:func:`~smplcore.catalog.feature_route`) whose signature the core knows is then served here: the
feature check, the dependencies called directly (each takes only the ``Request``, or is the core's
``PageDep``), the endpoint, and the returned document serialized by its own model (FastAPI would
validate it again first). That is 60 % of a generated service's GET of one widget (bench
core-costs: 950k instructions before, 379k after) and half its POST. Everything else goes through
FastAPI unchanged: another route, a signature the table does not know, dependency overrides,
FastAPI's telemetry, and any request whose inputs are not plainly valid (a bad page number, a body
that fails validation), so every refusal is FastAPI's.
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Callable, Iterable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from typing import Any, Final, cast
from urllib.parse import parse_qsl

import fastapi.routing
from fastapi import FastAPI, Request, Response, params
from fastapi.datastructures import DefaultPlaceholder
from fastapi.dependencies.models import Dependant
from fastapi.exceptions import ResponseValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.convertors import StringConvertor
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect
from starlette.routing import Route, WebSocketRoute
from starlette.types import Message, Receive, Scope, Send

from smplcore._routes import api_routes
from smplcore.catalog import _account_granted, _FeatureRoute
from smplcore.errors import SmplkitError
from smplcore.jsonapi import (
    DEFAULT_PAGE_SIZE,
    MAX_PAGE_NUMBER,
    MAX_PAGE_SIZE,
    Page,
    _page_dependency,
)

__all__ = ["RouteTable", "Unserved"]

_JSON: Final = b"application/json"
_BODYLESS: Final = frozenset({204, 304})


@dataclass(frozen=True, slots=True)
class Unserved:
    """FastAPI serves the request after all: ``body`` is what was read of it already."""

    body: bytes | None = None

    def replay(self, receive: Receive) -> Receive:
        if self.body is None:
            return receive
        body = self.body

        async def replayed() -> Message:
            return {"type": "http.request", "body": body, "more_body": False}

        return replayed


class _RouteHandler:
    """One route's request, served without FastAPI's router, dependency solver or second
    validation of the returned document."""

    def __init__(self, route: Any, original: _FeatureRoute, app: FastAPI) -> None:
        dependant: Dependant = route.dependant
        self.app = app
        self.route = original
        self.endpoint: Callable[..., Any] = route.endpoint
        self.feature = original.feature
        self.path_params = [field.name for field in dependant.path_params]
        self.request_param = dependant.request_param_name
        self.response_param = dependant.response_param_name
        self.status_code: int | None = route.status_code
        self.response_field = route.response_field
        model = route.response_model
        self.returned_as_is = (
            isinstance(model, type)
            and issubclass(model, BaseModel)
            and model.model_config.get("revalidate_instances", "never") == "never"
        )
        self.response_model = model
        self.body_field = dependant.body_params[0] if dependant.body_params else None
        self.dependencies = [
            (
                d.name,
                cast("Callable[..., Any]", d.call),
                d.request_param_name,
                inspect.isasyncgenfunction(d.call),
            )
            for d in dependant.dependencies
        ]
        self.paged = any(d.call is _page_dependency for d in dependant.dependencies)

    async def __call__(
        self, scope: Scope, receive: Receive, send: Send, path_params: dict[str, str]
    ) -> Unserved | None:
        """Serve the request (None), or leave it to FastAPI before a dependency or the endpoint
        has run."""
        if self.app.dependency_overrides or scope.get("fastapi.telemetry") is not None:
            return Unserved()
        scope["path_params"] = path_params
        scope["route"] = self.route
        scope["endpoint"] = self.endpoint
        scope.setdefault("router", self.app.router)
        request = Request(scope, receive)
        try:
            await _account_granted(request, self.feature)
        except SmplkitError as refusal:
            await handle_exception(self.app, request, send, refusal)
            return None
        values = await self._inputs(request, path_params)
        if isinstance(values, Unserved):
            return values
        await self._respond(request, values, send)
        return None

    async def _inputs(
        self, request: Request, path_params: dict[str, str]
    ) -> dict[str, Any] | Unserved:
        """The endpoint's arguments that need no dependency, or Unserved when one of them is not
        plainly valid."""
        values: dict[str, Any] = {name: path_params[name] for name in self.path_params}
        if self.paged:
            page = _plain_page(request.scope["query_string"])
            if page is None:
                return Unserved()
            values[_PAGE] = page
        if self.body_field is not None:
            try:
                body = await request.body()
            except ClientDisconnect:
                return Unserved()
            document = _plain_body(self.body_field, request.headers.get("content-type"), body)
            if document is _NOT_PLAIN:
                return Unserved(body)
            values[self.body_field.name] = document
        if self.request_param is not None:
            values[self.request_param] = request
        return values

    async def _respond(self, request: Request, values: dict[str, Any], send: Send) -> None:
        """Call the dependencies and the endpoint; send the document, or the app's answer to
        what they raised (a dependency with yield sees it first, as under FastAPI)."""
        response = None
        if self.response_param is not None:
            response = values[self.response_param] = _sub_response()
        page = values.pop(_PAGE, None)
        started = False
        try:
            async with AsyncExitStack() as stack:
                for name, call, request_param, generator in self.dependencies:
                    arguments = {} if request_param is None else {request_param: request}
                    if call is _page_dependency:
                        value: Any = page
                    elif generator:
                        value = await stack.enter_async_context(
                            asynccontextmanager(call)(**arguments)
                        )
                    else:
                        value = await call(**arguments)
                    if name is not None:
                        values[name] = value
                result = await self.endpoint(**values)
                if isinstance(result, Response):  # sent as it is, as FastAPI sends it
                    started = True
                    await result(request.scope, request.receive, send)
                else:
                    content = self._serialize(result)
                    started = True
                    await send_document(send, content, self.status_code, response)
        except Exception as error:
            if started:
                raise
            await handle_exception(self.app, request, send, error)

    def _serialize(self, document: Any) -> bytes:
        """The returned value as FastAPI serializes it; a document of the route's own model
        class is not validated again."""
        if self.returned_as_is and type(document) is self.response_model:
            content: bytes = document.__pydantic_serializer__.to_json(document, by_alias=True)
            return content
        value, errors = self.response_field.validate(document, {}, loc=("response",))
        if errors:
            raise ResponseValidationError(errors=errors, body=document)
        serialized: bytes = self.response_field.serialize_json(value, by_alias=True)
        return serialized


async def send_document(
    send: Send, content: bytes, status_code: int | None, response: Response | None
) -> None:
    """The response FastAPI sends for a returned model: the same status and headers."""
    status = status_code or 200
    if response is not None and response.status_code:
        status = response.status_code
    headers = [(b"content-length", str(len(content)).encode()), (b"content-type", _JSON)]
    if response is not None:
        headers += response.headers.raw
    body = b"" if status in _BODYLESS or status < 200 else content
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def _sub_response() -> Response:
    """The response a route may set headers and a status on, as FastAPI makes it."""
    response = Response()
    del response.headers["content-length"]
    response.status_code = None  # type: ignore[assignment]
    return response


def _plain_page(query_string: bytes) -> Page | None:
    """The page of ``page[number]``/``page[size]`` when both are absent or plain in-range
    integers; None for anything FastAPI should judge."""
    params = dict(parse_qsl(query_string.decode("latin-1"), keep_blank_values=True))
    number = _plain_int(params.get("page[number]"), 1, MAX_PAGE_NUMBER)
    size = _plain_int(params.get("page[size]"), DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)
    return None if number is None or size is None else Page(number, size)


def _plain_int(raw: str | None, default: int, maximum: int) -> int | None:
    if raw is None:
        return default
    if not raw.isascii() or not raw.isdigit() or len(raw) > len(str(maximum)):
        return None
    value = int(raw)
    return value if 1 <= value <= maximum else None


_NOT_PLAIN: Final = object()
_PAGE: Final = "\x00page"
"""Where the page waits among the endpoint's arguments until its dependency's turn."""


def _plain_body(field: Any, content_type: str | None, body: bytes) -> Any:
    """The body as the route's body field validates it, when it is JSON under a JSON media type
    and valid; _NOT_PLAIN for anything FastAPI should judge (and refuse with its own errors)."""
    if not body or content_type is None:
        return _NOT_PLAIN
    media_type = content_type.partition(";")[0].strip().lower()
    maintype, _, subtype = media_type.partition("/")
    if maintype != "application" or not (subtype == "json" or subtype.endswith("+json")):
        return _NOT_PLAIN
    try:
        value, errors = field.validate(json.loads(body), {}, loc=("body",))
    except (ValueError, RecursionError):  # not JSON, or nested too deep for json
        return _NOT_PLAIN
    return _NOT_PLAIN if errors else value


@dataclass(frozen=True, slots=True)
class _Entry:
    regex: Any
    """The route's compiled path; None for a route the table cannot match (a mount...)."""
    methods: frozenset[str] | None
    handler: _RouteHandler | None


class RouteTable:
    """The app's routes, flat and in FastAPI's order, each with the core's handler if it has
    one. Built at the app's first request, when every router is included."""

    def __init__(self, entries: Iterable[_Entry]) -> None:
        self.entries = tuple(entries)

    @classmethod
    def of(cls, app: FastAPI) -> RouteTable:
        entries = []
        for route in api_routes(app):
            original = getattr(route, "original_route", route)
            if isinstance(original, WebSocketRoute | fastapi.routing.APIWebSocketRoute):
                continue  # never an HTTP request's
            if not isinstance(original, Route):
                entries.append(_Entry(None, None, None))
                continue
            methods = None if route.methods is None else frozenset(route.methods)
            handler = None
            if isinstance(original, _FeatureRoute) and _servable(route, app):
                handler = _RouteHandler(route, original, app)
            entries.append(_Entry(route.path_regex, methods, handler))
        return cls(entries)

    def match(self, scope: Scope) -> tuple[_RouteHandler, dict[str, str]] | None:
        """The core's handler of the route FastAPI would choose, with the path's parameters;
        None when FastAPI should route the request."""
        if scope.get("root_path") or scope["method"] == "HEAD":
            return None
        path, method = scope["path"], scope["method"]
        for entry in self.entries:
            if entry.regex is None:
                return None
            match = entry.regex.match(path)
            if match is not None and (entry.methods is None or method in entry.methods):
                if entry.handler is None:
                    return None
                return entry.handler, match.groupdict()
        return None


def _servable(route: Any, app: FastAPI) -> bool:
    """Whether the core's handler serves exactly what FastAPI would for this route."""
    dependant: Dependant | None = getattr(route, "dependant", None)
    response_field = getattr(route, "response_field", None)
    plain_options = (
        route.response_model_include is None
        and route.response_model_exclude is None
        and route.response_model_by_alias
        and not route.response_model_exclude_unset
        and not route.response_model_exclude_defaults
        and not route.response_model_exclude_none
        and isinstance(route.response_class, DefaultPlaceholder)
        and route.response_class.value is JSONResponse
        and getattr(route, "max_body_size", None) is None
        and getattr(app.router, "max_body_size", None) is None
    )
    if (
        dependant is None
        or not plain_options
        or not hasattr(response_field, "serialize_json")
        or route.status_code in _BODYLESS
        or not inspect.iscoroutinefunction(route.endpoint)
        or any(
            not isinstance(convertor, StringConvertor)
            for convertor in route.param_convertors.values()
        )
    ):
        return False
    body = dependant.body_params
    return (
        all(field.field_info.annotation is str for field in dependant.path_params)
        and not (dependant.query_params or dependant.header_params or dependant.cookie_params)
        and dependant.background_tasks_param_name is None
        and dependant.security_scopes_param_name is None
        and getattr(dependant, "http_connection_param_name", None) is None
        and (
            not body
            or (
                len(body) == 1
                and not isinstance(body[0].field_info, params.Form)
                and not getattr(route, "_embed_body_fields", False)
            )
        )
        and len({d.call for d in dependant.dependencies}) == len(dependant.dependencies)
        and all(_plain_dependency(d) for d in dependant.dependencies)
    )


def _plain_dependency(dependant: Dependant) -> bool:
    """The core's page, or an async function (or generator) of the request alone."""
    if dependant.call is _page_dependency:
        return True
    call = dependant.call
    return (
        (inspect.iscoroutinefunction(call) or inspect.isasyncgenfunction(call))
        and not dependant.dependencies
        and not (
            dependant.path_params
            or dependant.query_params
            or dependant.header_params
            or dependant.cookie_params
            or dependant.body_params
        )
        and dependant.response_param_name is None
        and dependant.background_tasks_param_name is None
        and dependant.security_scopes_param_name is None
        and getattr(dependant, "websocket_param_name", None) is None
        and getattr(dependant, "http_connection_param_name", None) is None
        and getattr(dependant, "scope", None) != "function"
    )


async def handle_exception(app: FastAPI, request: Request, send: Send, error: Exception) -> None:
    """Answer an exception with the app's own handler for it, as Starlette's
    ExceptionMiddleware would; re-raise when the app has none (the middleware's 500)."""
    handlers = app.exception_handlers
    handler = None
    if isinstance(error, HTTPException):
        handler = None if error.status_code == 500 else handlers.get(error.status_code)
    if handler is None:
        handler = next(
            (
                handlers[cls]
                for cls in type(error).__mro__
                if cls in handlers and cls is not Exception
            ),
            None,
        )
    if handler is None:
        raise error
    response = handler(request, error)
    if inspect.isawaitable(response):
        response = await response
    await response(request.scope, request.receive, send)
