"""Errors that become JSON:API error documents, and the handlers that render them."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from http import HTTPStatus
from types import MappingProxyType
from typing import Any, ClassVar

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response
from starlette.routing import Match

from smplcore._response import JSONAPI_MEDIA_TYPE, JsonApiResponse
from smplcore._routes import api_routes

__all__ = [
    "BadRequestError",
    "ConflictError",
    "ForbiddenError",
    "InternalServerError",
    "MethodNotAllowedError",
    "NotAcceptableError",
    "NotFoundError",
    "ServiceUnavailableError",
    "SmplkitError",
    "UnauthorizedError",
    "UnprocessableEntityError",
    "UnsupportedMediaTypeError",
    "error_document",
    "error_from_status",
    "install_error_handlers",
    "json_pointer",
    "validation_errors",
]

_logger = logging.getLogger("smplcore.errors")


class SmplkitError(Exception):
    """Base of every error the core turns into a JSON:API error document.

    ``status``, ``code`` and ``title`` are class attributes; an instance may override them
    (keyword arguments). ``pointer`` (a JSON Pointer into the request document),
    ``parameter`` (a query or path parameter name) or ``header`` (a request header name, as
    JSON:API 1.1 spells it) become the error's ``source``. ``default_headers`` are sent with
    every instance unless ``headers`` names them too.
    """

    status: int = 500
    code: str = "internal_error"
    title: str = "Internal Server Error"
    default_headers: ClassVar[Mapping[str, str]] = MappingProxyType({})

    def __init__(
        self,
        detail: str | None = None,
        *,
        pointer: str | None = None,
        parameter: str | None = None,
        headers: Mapping[str, str] | None = None,
        code: str | None = None,
        title: str | None = None,
        status: int | None = None,
        header: str | None = None,
    ) -> None:
        super().__init__(detail or self.title)
        self.detail = detail
        self.pointer = pointer
        self.parameter = parameter
        self.header = header
        given = dict(headers or {})
        overridden = {name.lower() for name in given}
        self.headers: dict[str, str] = {
            **{k: v for k, v in self.default_headers.items() if k.lower() not in overridden},
            **given,
        }
        if code is not None:
            self.code = code
        if title is not None:
            self.title = title
        if status is not None:
            self.status = status

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.__module__ == __name__:
            _BY_STATUS.setdefault(cls.status, cls)

    def to_error_object(self) -> dict[str, Any]:
        """The JSON:API error object (``status`` as a string, as the spec requires)."""
        error: dict[str, Any] = {"status": str(self.status), "code": self.code, "title": self.title}
        if self.detail:
            error["detail"] = self.detail
        if self.pointer is not None:
            error["source"] = {"pointer": self.pointer}
        elif self.parameter is not None:
            error["source"] = {"parameter": self.parameter}
        elif self.header is not None:
            error["source"] = {"header": self.header}
        return error

    def __repr__(self) -> str:
        name = type(self).__name__
        return f"{name}(status={self.status}, code={self.code!r}, detail={self.detail!r})"


_BY_STATUS: dict[int, type[SmplkitError]] = {}
"""The first subclass declared for each status: what :func:`error_from_status` raises."""


class BadRequestError(SmplkitError):
    status, code, title = 400, "bad_request", "Bad Request"


class UnauthorizedError(SmplkitError):
    """401; always carries a ``WWW-Authenticate: Bearer ...`` challenge."""

    status, code, title = 401, "unauthorized", "Unauthorized"
    default_headers = MappingProxyType({"WWW-Authenticate": "Bearer"})


class ForbiddenError(SmplkitError):
    status, code, title = 403, "forbidden", "Forbidden"


class NotFoundError(SmplkitError):
    status, code, title = 404, "not_found", "Not Found"


class MethodNotAllowedError(SmplkitError):
    status, code, title = 405, "method_not_allowed", "Method Not Allowed"


class NotAcceptableError(SmplkitError):
    status, code, title = 406, "not_acceptable", "Not Acceptable"


class ConflictError(SmplkitError):
    status, code, title = 409, "conflict", "Conflict"


class UnsupportedMediaTypeError(SmplkitError):
    status, code, title = 415, "unsupported_media_type", "Unsupported Media Type"


class UnprocessableEntityError(SmplkitError):
    status, code, title = 422, "unprocessable_entity", "Unprocessable Entity"


class InternalServerError(SmplkitError):
    """500 with a generic detail: never the exception's text."""


class ServiceUnavailableError(SmplkitError):
    status, code, title = 503, "service_unavailable", "Service Unavailable"


GENERIC_500_DETAIL = (
    "An unexpected error occurred. Quote the X-Request-ID header when reporting it."
)


def error_from_status(
    status: int, detail: str | None = None, *, headers: Mapping[str, str] | None = None
) -> SmplkitError:
    """The :class:`SmplkitError` for an HTTP status (a known subclass when there is one)."""
    cls = _BY_STATUS.get(status)
    if cls is not None:
        return cls(detail, headers=headers)
    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:
        phrase = "Error"
    code = phrase.lower().replace(" ", "_").replace("-", "_").replace("'", "")
    return SmplkitError(detail, headers=headers, status=status, code=code, title=phrase)


def error_document(errors: Sequence[SmplkitError]) -> dict[str, Any]:
    """A JSON:API error document; identical error objects are merged (the schema wants them
    unique)."""
    objects: list[dict[str, Any]] = []
    for error in errors:
        obj = error.to_error_object()
        if obj not in objects:
            objects.append(obj)
    return {"errors": objects}


def json_pointer(parts: Iterable[str | int]) -> str:
    """An RFC 6901 JSON Pointer from path parts (``~`` and ``/`` escaped)."""
    return "".join("/" + str(part).replace("~", "~0").replace("/", "~1") for part in parts)


_PARAMETER_LOCATIONS = frozenset({"query", "path", "header", "cookie"})


def validation_errors(exc: RequestValidationError) -> tuple[int, list[SmplkitError]]:
    """Map FastAPI/Pydantic request validation errors to a status and JSON:API errors.

    Body errors: 422 with ``source.pointer`` (e.g. ``/data/attributes/name``); malformed
    JSON: 400. Query, path and cookie parameters: 400 with ``source.parameter``; headers:
    400 with ``source.header``.
    When both kinds occur the more general 400 is used.
    """
    errors: list[SmplkitError] = []
    status = 422
    for raw in exc.errors():
        loc = tuple(raw.get("loc", ()))
        kind = str(raw.get("type", "validation_error"))
        message = str(raw.get("msg", "Invalid value"))
        where = loc[0] if loc else "body"
        if where == "body":
            if kind == "json_invalid":
                status = 400
                ctx = raw.get("ctx") or {}
                reason = ctx.get("error") if isinstance(ctx, dict) else None
                detail = "The request body is not valid JSON" + (f": {reason}" if reason else "")
                errors.append(BadRequestError(detail, code="json_invalid", pointer=""))
                continue
            if loc == ("body",) and kind == "missing":
                detail = (
                    "A JSON:API request document is required "
                    "(send it with Content-Type: application/vnd.api+json)"
                )
                errors.append(UnprocessableEntityError(detail, code="missing", pointer=""))
                continue
            errors.append(
                UnprocessableEntityError(message, code=kind, pointer=json_pointer(loc[1:]))
            )
        else:
            status = 400
            name = str(loc[1]) if len(loc) > 1 else str(where)
            if where == "header":
                errors.append(BadRequestError(message, code=kind, header=name))
                continue
            if where in _PARAMETER_LOCATIONS and where != "query":
                message = f"{message} ({where} parameter)"
            errors.append(BadRequestError(message, code=kind, parameter=name))
    if not errors:
        errors.append(UnprocessableEntityError("The request is invalid"))
    if status == 400:
        for error in errors:
            # one status for the whole document: the most general one
            error.status = 400
    return status, errors


def _jsonapi_response(
    status: int, errors: Sequence[SmplkitError], headers: Mapping[str, str] | None = None
) -> Response:
    return JsonApiResponse(error_document(errors), status_code=status, headers=headers)


async def _handle_smplkit_error(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, SmplkitError)  # noqa: S101
    if exc.status >= 500:
        _logger.error("%s: %s", type(exc).__name__, exc.detail or exc.title)
    return _jsonapi_response(exc.status, [exc], exc.headers or None)


async def _handle_validation_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)  # noqa: S101
    refusal = _media_type_refusal(request, exc)
    if refusal is not None:
        return _jsonapi_response(refusal.status, [refusal])
    status, errors = validation_errors(exc)
    return _jsonapi_response(status, errors)


def _media_type_refusal(
    request: Request, exc: RequestValidationError
) -> UnsupportedMediaTypeError | None:
    """415 for a request document FastAPI did not read as JSON because its Content-Type is not
    JSON (curl's ``-d`` sends a form's): the document then fails validation as a whole.

    Decided here, once validation has failed, rather than by the middleware: a request that
    validates pays nothing, and a route that takes a form or a file keeps working.
    """
    document_refused = any(
        tuple(error.get("loc", ())) == ("body",) and error.get("type") != "missing"
        for error in exc.errors()
    )
    content_type = request.headers.get("content-type")
    media_type = (content_type or "").partition(";")[0].strip().lower()
    is_json = media_type == "application/json" or (
        media_type.startswith("application/") and media_type.endswith("+json")
    )
    if not document_refused or is_json:
        return None
    sent = f"it was sent as {media_type}" if media_type else "it was sent with no Content-Type"
    return UnsupportedMediaTypeError(
        f"Send the request document with Content-Type: {JSONAPI_MEDIA_TYPE} ({sent})",
        header="Content-Type",
    )


async def _handle_http_exception(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)  # noqa: S101
    headers = exc.headers
    if exc.status_code == 405:
        headers = {**(headers or {}), "Allow": ", ".join(allowed_methods(request))}
    detail: str | None = exc.detail if isinstance(exc.detail, str) else None
    try:
        if detail == HTTPStatus(exc.status_code).phrase:
            detail = None
    except ValueError:
        pass
    if detail is None and exc.status_code == 404:
        detail = "No resource at this path"
    error = error_from_status(exc.status_code, detail, headers=headers)
    if exc.status_code < 200 or exc.status_code in (204, 205, 304):
        return Response(status_code=exc.status_code, headers=headers)
    return _jsonapi_response(exc.status_code, [error], headers)


def allowed_methods(request: Request) -> list[str]:
    """Every method some route accepts at the request's path, sorted.

    A 405 from the router names only the methods of the first route that matched the path,
    while FastAPI declares one route per method.
    """
    methods: set[str] = set()
    for route in api_routes(request.app):
        route_methods = getattr(route, "methods", None)
        if route_methods and route.matches(request.scope)[0] is not Match.NONE:
            methods |= route_methods
    return sorted(methods)


async def _handle_unexpected(_request: Request, exc: Exception) -> Response:
    _logger.error("unhandled exception", exc_info=exc)
    return _jsonapi_response(500, [InternalServerError(GENERIC_500_DETAIL)])


def install_error_handlers(app: FastAPI) -> None:
    """Render every error as a JSON:API error document.

    :class:`SmplkitError` (its own status), request validation errors (422 body / 400
    parameters), Starlette/FastAPI ``HTTPException`` (404 unknown route, 405 wrong method,
    406, 415, ...), and any other exception (500 with a generic detail; the exception is
    logged, never sent). :func:`smplcore.install_core` calls this.
    """
    app.add_exception_handler(SmplkitError, _handle_smplkit_error)
    app.add_exception_handler(RequestValidationError, _handle_validation_error)
    app.add_exception_handler(StarletteHTTPException, _handle_http_exception)
    app.add_exception_handler(Exception, _handle_unexpected)
