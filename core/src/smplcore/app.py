"""``install_core``: wire the shared core into a FastAPI app in one call."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

from smplcore.auth import VERIFIER_STATE_KEY, AccessPolicy, TokenVerifier
from smplcore.catalog import CATALOG_STATE_KEY, DEFAULT_CATALOG, Catalog
from smplcore.errors import install_error_handlers
from smplcore.jsonapi import JSONAPI_MEDIA_TYPE
from smplcore.logging import configure_logging
from smplcore.middleware import RequestContextMiddleware
from smplcore.settings import CoreSettings

__all__ = ["SETTINGS_STATE_KEY", "install_core"]

SETTINGS_STATE_KEY = "smplcore_settings"

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
                        },
                    },
                },
            },
        }
    },
}


def install_core(
    app: FastAPI,
    settings: CoreSettings,
    *,
    catalog: Catalog | None = None,
    access: AccessPolicy | None = None,
) -> None:
    """Wire the shared core into ``app`` (call it in the app factory, before including routers).

    - JSON logging (stdout) at ``settings.log_level``;
    - JSON:API error handlers (:func:`smplcore.errors.install_error_handlers`);
    - the pure-ASGI :class:`~smplcore.middleware.RequestContextMiddleware` (request id, request
      log, content negotiation, ``application/vnd.api+json`` on every response);
    - with ``access``, that middleware also refuses every request without the token its path
      needs (:class:`~smplcore.auth.AccessPolicy`: secure by default); the app's OpenAPI
      document and interactive docs are public;
    - the OpenAPI document declares ``application/vnd.api+json`` bodies and JSON:API errors;
    - settings, token verifier and catalog (default :data:`DEFAULT_CATALOG`) on ``app.state``.
    """
    configure_logging(settings.log_level, service_name=settings.service_name)
    install_error_handlers(app)
    verifier = TokenVerifier(settings)
    json_paths = {path for path in (app.openapi_url,) if path}
    if access is not None:
        docs = (app.openapi_url, app.docs_url, app.swagger_ui_oauth2_redirect_url, app.redoc_url)
        access = access.with_public_paths(*docs)
    app.add_middleware(
        RequestContextMiddleware,
        json_paths=json_paths,
        access=access,
        verifier=None if access is None else verifier,
    )
    setattr(app.state, SETTINGS_STATE_KEY, settings)
    setattr(app.state, VERIFIER_STATE_KEY, verifier)
    setattr(app.state, CATALOG_STATE_KEY, DEFAULT_CATALOG if catalog is None else catalog)

    build_openapi = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = jsonapi_openapi(build_openapi())
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def jsonapi_openapi(schema: dict[str, Any]) -> dict[str, Any]:
    """Rewrite an OpenAPI document for JSON:API: ``application/json`` bodies become
    ``application/vnd.api+json``, and FastAPI's validation-error responses become
    JSON:API error documents (a 422 for the body; 400 for parameters)."""
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    components["ErrorDocument"] = _ERROR_DOCUMENT_SCHEMA
    error_content = {JSONAPI_MEDIA_TYPE: {"schema": {"$ref": "#/components/schemas/ErrorDocument"}}}
    for path_item in schema.get("paths", {}).values():
        for operation in path_item.values():
            if not isinstance(operation, dict):
                continue
            body = operation.get("requestBody")
            if isinstance(body, dict):
                _rename_json(body.get("content"))
            responses = operation.get("responses", {})
            had_validation = "422" in responses
            for response in responses.values():
                if isinstance(response, dict):
                    _rename_json(response.get("content"))
            if had_validation:
                responses["422"] = {"description": "Validation Error", "content": error_content}
                if any(p.get("in") != "body" for p in operation.get("parameters", [])):
                    responses.setdefault(
                        "400", {"description": "Bad Request", "content": error_content}
                    )
    for unused in ("HTTPValidationError", "ValidationError"):
        components.pop(unused, None)
    return schema


def _rename_json(content: object) -> None:
    if isinstance(content, dict) and "application/json" in content:
        content[JSONAPI_MEDIA_TYPE] = content.pop("application/json")
