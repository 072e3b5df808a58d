"""install_core wiring and the OpenAPI document it leaves behind."""

import gc
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from importlib import metadata
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

import smplcore
from smplcore import JSONAPI_MEDIA_TYPE, AccessPolicy, CoreSettings, install_core
from smplcore.auth import VERIFIER_STATE_KEY, TokenVerifier
from smplcore.catalog import CATALOG_STATE_KEY
from smplcore.testing import make_account_token


def test_install_core_stores_its_state(app: FastAPI, settings: CoreSettings) -> None:
    with pytest.warns(DeprecationWarning, match="SETTINGS_STATE_KEY"):
        from smplcore.app import SETTINGS_STATE_KEY
    assert getattr(app.state, SETTINGS_STATE_KEY) is settings
    assert isinstance(getattr(app.state, VERIFIER_STATE_KEY), TokenVerifier)
    assert getattr(app.state, CATALOG_STATE_KEY) is smplcore.DEFAULT_CATALOG
    assert smplcore.__version__ == metadata.version("smplkit-core")


def test_start_up_objects_are_frozen_out_of_the_collectors_reach(settings: CoreSettings) -> None:
    started: list[int] = []

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        started.append(gc.get_freeze_count())
        yield

    app = FastAPI(lifespan=lifespan)
    install_core(app, settings, access=AccessPolicy())
    with TestClient(app):
        assert started  # the app's own lifespan still runs, inside the core's
        assert gc.get_freeze_count() > 0  # a full collection walks none of start-up's objects


def test_dependencies_need_install_core(settings: CoreSettings) -> None:
    app = FastAPI()

    @app.get("/me")
    async def me(account: smplcore.CurrentAccount) -> dict[str, Any]:
        return {"meta": {"account": account.account_id}}

    with TestClient(app, raise_server_exceptions=False) as client:
        token = make_account_token(settings, account_id="a")
        response = client.get("/me", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 500


def test_openapi_declares_jsonapi_bodies_and_errors(client: TestClient) -> None:
    schema = client.get("/openapi.json").json()
    create = schema["paths"]["/v1/widgets"]["post"]
    assert list(create["requestBody"]["content"]) == [JSONAPI_MEDIA_TYPE]
    assert list(create["responses"]["201"]["content"]) == [JSONAPI_MEDIA_TYPE]
    error_ref = {"$ref": "#/components/schemas/ErrorDocument"}
    assert create["responses"]["422"]["content"][JSONAPI_MEDIA_TYPE]["schema"] == error_ref
    listing = schema["paths"]["/v1/widgets"]["get"]
    assert listing["responses"]["400"]["content"][JSONAPI_MEDIA_TYPE]["schema"] == error_ref
    names = {p["name"] for p in listing["parameters"]}
    assert {"page[number]", "page[size]"} <= names
    assert "HTTPValidationError" not in schema["components"]["schemas"]
    assert "ErrorDocument" in schema["components"]["schemas"]
    # cached: the same object on the next call
    assert client.app.openapi() is client.app.openapi()  # type: ignore[attr-defined]


def test_install_core_without_openapi(settings: CoreSettings) -> None:
    app = FastAPI(openapi_url=None)
    install_core(app, settings, access=AccessPolicy(public_paths={"/x", "/openapi.json"}))

    @app.get("/x")
    async def x() -> dict[str, Any]:
        return {"meta": {}}

    with TestClient(app) as client:
        assert client.get("/x").headers["content-type"] == JSONAPI_MEDIA_TYPE
        assert client.get("/openapi.json").status_code == 404


ERROR_CONTENT = {JSONAPI_MEDIA_TYPE: {"schema": {"$ref": "#/components/schemas/ErrorDocument"}}}


def test_openapi_names_the_token_and_the_errors_of_each_route_under_a_policy(
    settings: CoreSettings, app_factory: Callable[..., FastAPI]
) -> None:
    policy = AccessPolicy(public_paths={"/plain"}, internal_prefix="/internal")
    schema = app_factory(settings, policy).openapi()
    schemes = schema["components"]["securitySchemes"]
    assert schemes["accountToken"]["type"] == "http"
    assert schemes["accountToken"]["scheme"] == "bearer"
    assert schemes["internalToken"]["scheme"] == "bearer"
    paths = schema["paths"]
    create = paths["/v1/widgets"]["post"]
    assert create["security"] == [{"accountToken": []}]
    assert {"400", "401", "403", "406", "409", "415", "422"} <= set(create["responses"])
    assert "404" not in create["responses"]
    read = paths["/v1/widgets/{widget_id}"]["get"]
    assert {"401", "404", "406"} <= set(read["responses"])
    assert not {"403", "409", "415"} & set(read["responses"])  # no feature asked, no document
    # The type or id of an UpdateDocument that is not the endpoint's (JSON:API: 409).
    assert "409" in paths["/v1/widgets/{widget_id}"]["patch"]["responses"]
    assert paths["/v1/widgets/{widget_id}/export"]["get"]["responses"]["403"]
    assert paths["/search"]["get"]["security"] == [{"accountToken": []}]  # no dependency needed
    assert paths["/internal/ping"]["get"]["security"] == [{"internalToken": []}]
    public = paths["/plain"]["get"]
    assert "security" not in public
    assert "401" not in public["responses"]
    for path_item in paths.values():
        for operation in path_item.values():
            for status, response in operation["responses"].items():
                if status >= "400":
                    assert response["content"] == ERROR_CONTENT, (status, operation)


def test_openapi_without_a_policy_names_the_token_of_the_routes_that_ask_for_it(
    client: TestClient,
) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    assert paths["/v1/widgets"]["get"]["security"] == [{"accountToken": []}]
    assert paths["/v1/widgets/{widget_id}/export"]["get"]["security"] == [{"accountToken": []}]
    assert paths["/internal/ping"]["get"]["security"] == [{"internalToken": []}]
    assert "security" not in paths["/search"]["get"]
    assert "401" not in paths["/search"]["get"]["responses"]


def test_an_error_response_the_route_declares_is_a_jsonapi_error_document(
    settings: CoreSettings,
) -> None:
    app = FastAPI()
    install_core(app, settings, access=AccessPolicy())

    @app.get("/ready", responses={503: {"description": "A dependency is down"}})
    async def ready() -> dict[str, Any]:
        return {"meta": {}}

    response = app.openapi()["paths"]["/ready"]["get"]["responses"]["503"]
    assert response == {"description": "A dependency is down", "content": ERROR_CONTENT}
