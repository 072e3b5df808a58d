"""The OpenAPI document of an app that runs the core: JSON:API bodies and error documents, the
bearer token each operation needs, and the errors the core answers for it.

:func:`smplcore.install_core` calls :func:`install_openapi`; the document is built once, at its
first request, when every router is included.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Final

from fastapi import FastAPI
from fastapi.dependencies.models import Dependant

from smplcore._response import JSONAPI_MEDIA_TYPE
from smplcore._routes import api_routes
from smplcore.auth import AccessPolicy, current_account, internal_caller
from smplcore.catalog import required_feature
from smplcore.jsonapi import CreateDocument, UpdateDocument

__all__ = ["jsonapi_openapi"]

_ERROR_DOCUMENT_SCHEMA: dict[str, Any] = {
    "title": "JSON:API error document",
    "type": "object",
    "required": ["errors"],
    "properties": {
        "errors": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "status": {"type": "string"},
                    "code": {"type": "string"},
                    "title": {"type": "string"},
                    "detail": {"type": "string"},
                    "source": {
                        "type": "object",
                        "properties": {
                            "pointer": {"type": "string"},
                            "parameter": {"type": "string"},
                            "header": {"type": "string"},
                        },
                    },
                },
            },
        }
    },
}


_SECURITY_SCHEMES: Final = {
    "accountToken": {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "JWT",
        "description": "An account token: the caller's account and subscription tier.",
    },
    "internalToken": {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "JWT",
        "description": "An internal token issued by the calling service to this one.",
    },
}
_AUTHENTICATION_DEPENDENCIES: Final[dict[object, str]] = {
    current_account: "accountToken",
    internal_caller: "internalToken",
}


def install_openapi(app: FastAPI, access: AccessPolicy | None) -> None:
    """Make ``app``'s OpenAPI document the one :func:`jsonapi_openapi` rewrites, under
    ``access``."""
    build_openapi = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = jsonapi_openapi(build_openapi(), app, access)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def jsonapi_openapi(
    schema: dict[str, Any], app: FastAPI | None = None, access: AccessPolicy | None = None
) -> dict[str, Any]:
    """Rewrite an OpenAPI document for JSON:API and the core's middleware.

    ``application/json`` bodies become ``application/vnd.api+json``; every error response
    (FastAPI's validation errors among them: 422 for the body, 400 for parameters or a body
    that is not JSON) is a JSON:API error document. Given the ``app``, each operation names
    the bearer token it needs (every non-public path under ``access``; else the routes that
    ask for the caller) with its 401, and the errors the core answers: 403
    (``require_feature``, or a client-generated id in a ``CreateDocument``), 404 (a path with
    parameters), 406, 409 (the type or id of a ``CreateDocument`` or ``UpdateDocument``), 415
    (a request body).
    """
    components = schema.setdefault("components", {})
    components.setdefault("schemas", {})["ErrorDocument"] = _ERROR_DOCUMENT_SCHEMA
    for unused in ("HTTPValidationError", "ValidationError"):
        components["schemas"].pop(unused, None)
    routes = {} if app is None else _routes_by_operation(app)
    for path, path_item in schema.get("paths", {}).items():
        for method, operation in path_item.items():
            if not isinstance(operation, dict):
                continue
            route = routes.get((path, method.upper()))
            token = None if route is None else _token_needed(path, route, access)
            if token is not None:
                operation["security"] = [{token: []}]
                components.setdefault("securitySchemes", {}).update(
                    {token: _SECURITY_SCHEMES[token]}
                )
            _describe_responses(operation, route, token)
    return schema


def _describe_responses(operation: dict[str, Any], route: Any, token: str | None) -> None:
    _rename_json(operation.get("requestBody", {}).get("content"))
    responses: dict[str, Any] = operation.setdefault("responses", {})
    for status, description in _errors_answered(operation, route, token).items():
        responses[status] = {"description": description}
    error_content = {JSONAPI_MEDIA_TYPE: {"schema": {"$ref": "#/components/schemas/ErrorDocument"}}}
    for status, response in responses.items():
        if status[:1] in {"4", "5"}:
            response["content"] = error_content
        else:
            _rename_json(response.get("content"))


def _errors_answered(operation: dict[str, Any], route: Any, token: str | None) -> dict[str, str]:
    """The error responses the core adds to an operation, by status."""
    responses = operation.get("responses", {})
    errors = {"422": "Validation Error"} if "422" in responses else {}
    parameters = operation.get("parameters", [])
    if errors and (parameters or "requestBody" in operation):
        errors["400"] = "Bad Request"  # a parameter FastAPI refuses, or a body that is not JSON
    if route is None:
        return errors
    errors["406"] = "Not Acceptable"
    if token is not None:
        errors["401"] = "Unauthorized"
    if _route_feature(route) or any(
        required_feature(d.call) for d in _dependencies(route.dependant)
    ):
        errors["403"] = "Forbidden"
    if any(p.get("in") == "path" for p in parameters):
        errors["404"] = "Not Found"
    if "requestBody" in operation:
        errors["415"] = "Unsupported Media Type"
    documents = _request_documents(route)
    if any(issubclass(document, (CreateDocument, UpdateDocument)) for document in documents):
        errors["409"] = "Conflict"  # a type, or an id, that is not the endpoint's
    if any(issubclass(document, CreateDocument) for document in documents):
        errors["403"] = "Forbidden"  # a client-generated id the endpoint does not accept
    return {
        status: errors[status]
        for status in sorted(errors)
        if status not in responses or status == "422"
    }


def _routes_by_operation(app: FastAPI) -> dict[tuple[str, str], Any]:
    """The routes with dependencies (FastAPI's), by OpenAPI path and method."""
    return {
        (route.path_format, method): route
        for route in api_routes(app)
        if getattr(route, "dependant", None) is not None
        for method in route.methods or ()
    }


def _request_documents(route: Any) -> list[type]:
    """The classes of the route's body parameters (those declared as a class)."""
    dependants = [route.dependant, *_dependencies(route.dependant)]
    annotations = [field.field_info.annotation for d in dependants for field in d.body_params]
    return [annotation for annotation in annotations if isinstance(annotation, type)]


def _route_feature(route: Any) -> str | None:
    """The feature of a :func:`~smplcore.catalog.feature_route` route (FastAPI 0.165 lists an
    included router's routes as contexts holding the original route)."""
    return required_feature(getattr(route, "original_route", route))


def _dependencies(dependant: Dependant) -> Iterator[Dependant]:
    for dependency in dependant.dependencies:
        yield dependency
        yield from _dependencies(dependency)


def _token_needed(path: str, route: Any, access: AccessPolicy | None) -> str | None:
    """The security scheme of the token a route needs, if any."""
    if access is not None:
        if access.is_public(path):
            return None
        return "internalToken" if access.is_internal(path) else "accountToken"
    if _route_feature(route) is not None:
        return "accountToken"
    for dependency in _dependencies(route.dependant):
        if required_feature(dependency.call) is not None:
            return "accountToken"
        if dependency.call in _AUTHENTICATION_DEPENDENCIES:
            return _AUTHENTICATION_DEPENDENCIES[dependency.call]
    return None


def _rename_json(content: object) -> None:
    if isinstance(content, dict) and "application/json" in content:
        content[JSONAPI_MEDIA_TYPE] = content.pop("application/json")
