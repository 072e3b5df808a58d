"""smplcore: the shared core of smplkit services.

JSON:API documents and errors, request logging, authentication and the subscription
catalog, wired into a FastAPI app by :func:`install_core`; calls to other services
(:class:`InternalClient`), traces and metrics (:mod:`smplcore.telemetry`). Every public name
is importable from its module and from here.
"""

import warnings
from typing import TYPE_CHECKING, Any

from smplcore.app import install_core
from smplcore.auth import (
    AccessPolicy,
    AccountContext,
    CurrentAccount,
    CurrentInternalCaller,
    InternalCaller,
    InternalTokens,
    TokenVerifier,
    current_account,
    internal_caller,
    issue_internal_token,
)
from smplcore.catalog import (
    DEFAULT_CATALOG,
    Catalog,
    Product,
    Tier,
    feature_route,
    load_catalog,
    require_feature,
)
from smplcore.client import InternalClient
from smplcore.errors import (
    BadRequestError,
    ConflictError,
    ForbiddenError,
    InternalServerError,
    MethodNotAllowedError,
    NotAcceptableError,
    NotFoundError,
    ServiceUnavailableError,
    SmplkitError,
    UnauthorizedError,
    UnprocessableEntityError,
    UnsupportedMediaTypeError,
    error_document,
    install_error_handlers,
)
from smplcore.jsonapi import (
    JSONAPI_MEDIA_TYPE,
    AttributesT,
    CollectionDocument,
    CreateDocument,
    ExistingResource,
    JsonApiResponse,
    NewResource,
    Page,
    PageDep,
    Resource,
    ResourceDocument,
    UpdateDocument,
    collection_document,
    page_params,
    resource_document,
)
from smplcore.logging import configure_logging, current_request_id
from smplcore.middleware import RequestContextMiddleware
from smplcore.settings import AuthSettings, ClientSettings, CoreSettings, TelemetrySettings
from smplcore.telemetry import span, start_telemetry, trace_headers, trace_queries

if TYPE_CHECKING:  # deprecated here (they need the `testing` extra): see __getattr__
    from smplcore.testing import assert_jsonapi_document as assert_jsonapi_document
    from smplcore.testing import assert_jsonapi_response as assert_jsonapi_response
    from smplcore.testing import make_account_token as make_account_token

__version__ = "1.3.0"


def __getattr__(name: str) -> Any:
    """The testing helpers, importable from here until 1.1.0, still are, with a warning."""
    if name in {"assert_jsonapi_document", "assert_jsonapi_response", "make_account_token"}:
        warnings.warn(
            f"smplcore.{name} is deprecated: import it from smplcore.testing (removed in 2.0)",
            DeprecationWarning,
            stacklevel=2,
        )
        from smplcore import testing  # noqa: PLC0415 - needs the `testing` extra

        return getattr(testing, name)
    raise AttributeError(f"module 'smplcore' has no attribute {name!r}")


__all__ = [
    "DEFAULT_CATALOG",
    "JSONAPI_MEDIA_TYPE",
    "AccessPolicy",
    "AccountContext",
    "AttributesT",
    "AuthSettings",
    "BadRequestError",
    "Catalog",
    "ClientSettings",
    "CollectionDocument",
    "ConflictError",
    "CoreSettings",
    "CreateDocument",
    "CurrentAccount",
    "CurrentInternalCaller",
    "ExistingResource",
    "ForbiddenError",
    "InternalCaller",
    "InternalClient",
    "InternalServerError",
    "InternalTokens",
    "JsonApiResponse",
    "MethodNotAllowedError",
    "NewResource",
    "NotAcceptableError",
    "NotFoundError",
    "Page",
    "PageDep",
    "Product",
    "RequestContextMiddleware",
    "Resource",
    "ResourceDocument",
    "ServiceUnavailableError",
    "SmplkitError",
    "TelemetrySettings",
    "Tier",
    "TokenVerifier",
    "UnauthorizedError",
    "UnprocessableEntityError",
    "UnsupportedMediaTypeError",
    "UpdateDocument",
    "__version__",
    "collection_document",
    "configure_logging",
    "current_account",
    "current_request_id",
    "error_document",
    "feature_route",
    "install_core",
    "install_error_handlers",
    "internal_caller",
    "issue_internal_token",
    "load_catalog",
    "page_params",
    "require_feature",
    "resource_document",
    "span",
    "start_telemetry",
    "trace_headers",
    "trace_queries",
]
