"""Fixtures for smplcore's own tests: settings, a small service app, schema validators."""

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Annotated, Any

import jwt
import pytest
from fastapi import APIRouter, Depends, FastAPI, Query, Request
from fastapi.testclient import TestClient
from jsonschema import Draft7Validator
from jsonschema.protocols import Validator
from pydantic import BaseModel, Field
from referencing import Registry, Resource

from smplcore import (
    AccessPolicy,
    AccountContext,
    AuthSettings,
    CollectionDocument,
    CoreSettings,
    CreateDocument,
    CurrentAccount,
    CurrentInternalCaller,
    NotFoundError,
    Page,
    PageDep,
    ResourceDocument,
    ServiceUnavailableError,
    UpdateDocument,
    collection_document,
    install_core,
    page_params,
    require_feature,
    resource_document,
    start_telemetry,
)
from smplcore import Resource as JsonApiResource
from smplcore.settings import TelemetrySettings
from smplcore.testing import (
    OtlpReceiver,
    fixed_validator_class,
    jsonapi_schema,
    otlp_receiver,
    validator_for_schema,
)

# The request schemas, copied unchanged from the JSON:API specification (CC0); the response
# schema is the one the core packages.
REQUEST_SCHEMAS = Path(__file__).resolve().parent / "jsonapi"

ACCOUNT_KEY = "account-signing-secret-for-tests-" + "0123456789abcdef" * 3
INTERNAL_SECRET = "internal-service-secret-for-tests-" + "0123456789abcdef" * 3
SERVICE = "widget-service"


# ---------------------------------------------------------------------------- schemas


def _load(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((REQUEST_SCHEMAS / name).read_text(encoding="utf-8"))
    return data


@pytest.fixture(scope="session")
def response_validator() -> Validator:
    """The official schema.json, read as draft-07 (the keywords it is written in).

    jsonschema mishandles the schema's match-everything ``patternProperties`` key ``""``
    (every ``meta``/``attributes`` member is reported as additional), hence the fixed class;
    test_testing_helpers.py shows both the bug and the fix.
    """
    return fixed_validator_class(Draft7Validator)(jsonapi_schema())


@pytest.fixture(scope="session")
def schema_registry() -> Registry[Any]:
    schema = jsonapi_schema()
    registry: Registry[Any] = Registry().with_resource(
        schema["$id"], Resource.from_contents(schema)
    )
    return registry


def _request_validator(name: str, registry: Registry[Any]) -> Validator:
    return validator_for_schema(_load(name), registry=registry)


@pytest.fixture(scope="session")
def create_validator(schema_registry: Registry[Any]) -> Validator:
    return _request_validator("schema_create_resource.json", schema_registry)


@pytest.fixture(scope="session")
def update_validator(schema_registry: Registry[Any]) -> Validator:
    return _request_validator("schema_update_resource.json", schema_registry)


@pytest.fixture
def assert_document(response_validator: Validator) -> Callable[[object], None]:
    def check(document: object) -> None:
        instance: Any = document
        errors = [e.message for e in response_validator.iter_errors(instance)]
        assert not errors, (errors, document)

    return check


# ---------------------------------------------------------------------------- settings


def make_settings(**auth: Any) -> CoreSettings:
    values: dict[str, Any] = {
        "account_token_key": ACCOUNT_KEY,
        "internal_token_secret": INTERNAL_SECRET,
    }
    values.update(auth)
    return CoreSettings(service_name=SERVICE, auth=AuthSettings(**values))


@pytest.fixture
def settings() -> CoreSettings:
    return make_settings()


@pytest.fixture
def settings_factory() -> Callable[..., CoreSettings]:
    """Settings with the test keys, overridden by the ``AuthSettings`` keyword arguments."""
    return make_settings


# ---------------------------------------------------------------------------- tokens

TokenFactory = Callable[..., str]


@pytest.fixture
def account_claims() -> Callable[..., dict[str, Any]]:
    def claims(**overrides: Any) -> dict[str, Any]:
        now = int(time.time())
        values: dict[str, Any] = {
            "iss": "smplkit-identity",
            "aud": "smplkit-api",
            "sub": "user-1",
            "iat": now,
            "exp": now + 300,
            "account_id": "acct-1",
            "tier": "free",
            "token_use": "account",
        }
        values.update(overrides)
        return {k: v for k, v in values.items() if v is not None}

    return claims


@pytest.fixture
def decoded_tokens(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every token PyJWT decodes during the test (a decode is a full verification)."""
    calls: list[str] = []
    real = jwt.decode

    def counting(token: str, *args: Any, **kwargs: Any) -> Any:
        calls.append(token)
        return real(token, *args, **kwargs)

    monkeypatch.setattr(jwt, "decode", counting)
    return calls


@pytest.fixture
def account_token(account_claims: Callable[..., dict[str, Any]]) -> TokenFactory:
    """Sign account claims (overrides; ``None`` drops a claim) with a key and algorithm."""

    def sign(*, key: str = ACCOUNT_KEY, algorithm: str = "HS256", **overrides: Any) -> str:
        return jwt.encode(account_claims(**overrides), key, algorithm=algorithm)

    return sign


@pytest.fixture
def internal_token() -> TokenFactory:
    def sign(*, key: str = INTERNAL_SECRET, algorithm: str = "HS256", **overrides: Any) -> str:
        now = int(time.time())
        values: dict[str, Any] = {
            "iss": "billing-service",
            "sub": "billing-service",
            "aud": SERVICE,
            "iat": now,
            "exp": now + 60,
            "token_use": "internal",
        }
        values.update(overrides)
        claims = {k: v for k, v in values.items() if v is not None}
        # PyJWS, not jwt.encode: it lets the tests sign claims that PyJWT would refuse to
        # encode (e.g. a non-string iss), to see the verifier refuse them
        payload = json.dumps(claims).encode()
        return jwt.api_jws.encode(payload, key, algorithm=algorithm)

    return sign


# ---------------------------------------------------------------------------- the app


class WidgetAttributes(BaseModel):
    name: str
    size: int


class WidgetCreate(BaseModel):
    name: Annotated[str, Field(min_length=1, max_length=50)]
    size: Annotated[int, Field(ge=1)] = 1


class WidgetPatch(BaseModel):
    name: Annotated[str | None, Field(min_length=1)] = None
    size: Annotated[int | None, Field(ge=1)] = None


def build_app(settings: CoreSettings, access: AccessPolicy | None = None) -> FastAPI:
    """A service as the template builds it: install_core first, then the routers."""
    app = FastAPI(title="widgets")
    if access is None:
        with pytest.warns(DeprecationWarning, match="access="):
            install_core(app, settings)
    else:
        install_core(app, settings, access=access)
    store: dict[str, dict[str, Any]] = {}

    router = APIRouter(prefix="/v1/widgets")

    def resource(request: Request, widget_id: str) -> JsonApiResource[WidgetAttributes]:
        return JsonApiResource[WidgetAttributes](
            type="widgets",
            id=widget_id,
            attributes=WidgetAttributes(**store[widget_id]["attributes"]),
            links={"self": str(request.url_for("get_widget", widget_id=widget_id))},
        )

    @router.get("")
    async def list_widgets(
        request: Request, page: PageDep, account: CurrentAccount
    ) -> CollectionDocument[WidgetAttributes]:
        ids = sorted(k for k, v in store.items() if v["account"] == account.account_id)
        chunk = ids[page.offset : page.offset + page.limit]
        return collection_document(
            [resource(request, i) for i in chunk], page=page, total=len(ids), url=str(request.url)
        )

    @router.post("", status_code=201)
    async def create_widget(
        request: Request,
        document: CreateDocument[WidgetCreate],
        account: Annotated[AccountContext, Depends(require_feature("widgets"))],
    ) -> ResourceDocument[WidgetAttributes]:
        attributes = document.attributes_for("widgets")
        widget_id = str(len(store) + 1)
        store[widget_id] = {"account": account.account_id, "attributes": attributes.model_dump()}
        url = str(request.url_for("get_widget", widget_id=widget_id))
        return resource_document(resource(request, widget_id), self_link=url)

    @router.get("/{widget_id}")
    async def get_widget(
        request: Request, widget_id: str, account: CurrentAccount
    ) -> ResourceDocument[WidgetAttributes]:
        widget = store.get(widget_id)
        if widget is None or widget["account"] != account.account_id:
            raise NotFoundError(f"No widget {widget_id}")
        return resource_document(resource(request, widget_id), self_link=str(request.url))

    @router.patch("/{widget_id}")
    async def update_widget(
        request: Request,
        widget_id: str,
        document: UpdateDocument[WidgetPatch],
        account: CurrentAccount,
    ) -> ResourceDocument[WidgetAttributes]:
        widget = store.get(widget_id)
        if widget is None or widget["account"] != account.account_id:
            raise NotFoundError(f"No widget {widget_id}")
        changes = document.attributes_for("widgets", widget_id)
        widget["attributes"].update(changes.model_dump(exclude_unset=True))
        return resource_document(resource(request, widget_id), self_link=str(request.url))

    @router.delete("/{widget_id}", status_code=204)
    async def delete_widget(widget_id: str, account: CurrentAccount) -> None:
        if store.get(widget_id, {}).get("account") != account.account_id:
            raise NotFoundError(f"No widget {widget_id}")
        del store[widget_id]

    @router.get("/{widget_id}/export", dependencies=[Depends(require_feature("widgets.export"))])
    async def export_widget(widget_id: str) -> dict[str, Any]:
        return {"meta": {"exported": widget_id}}

    app.include_router(router)

    @app.get("/internal/ping")
    async def internal_ping(caller: CurrentInternalCaller) -> dict[str, Any]:
        return {"meta": {"caller": caller.service}}

    @app.get("/boom")
    async def boom() -> dict[str, Any]:
        raise RuntimeError("database password is hunter2")

    @app.get("/unavailable")
    async def unavailable() -> dict[str, Any]:
        raise ServiceUnavailableError("The database is down")

    @app.get("/sync-page")
    async def sync_page(page: Annotated[Page, Depends(page_params)]) -> dict[str, Any]:
        return {"meta": {"number": page.number, "size": page.size}}

    @app.get("/search")
    async def search(limit: Annotated[int, Query(ge=1, le=10)]) -> dict[str, Any]:
        return {"meta": {"limit": limit}}

    @app.get("/plain")
    async def plain() -> dict[str, Any]:
        return {"meta": {"ok": True}}

    return app


@pytest.fixture
def app(settings: CoreSettings) -> FastAPI:
    return build_app(settings)


@pytest.fixture
def app_factory() -> Callable[..., FastAPI]:
    """``build_app(settings, access=None)``: the service app, optionally under an access policy."""
    return build_app


@pytest.fixture
def client(app: FastAPI) -> Iterator[TestClient]:
    with TestClient(app, base_url="http://testserver") as test_client:
        yield test_client


@pytest.fixture
def auth_headers(account_token: TokenFactory) -> Callable[..., dict[str, str]]:
    def headers(**overrides: Any) -> dict[str, str]:
        return {"Authorization": f"Bearer {account_token(**overrides)}"}

    return headers


# ---------------------------------------------------------------------------- traces


@pytest.fixture
def receiver(monkeypatch: pytest.MonkeyPatch) -> Iterator[OtlpReceiver]:
    """An OTLP receiver for the test's spans; tracing is off again after it (the spans sent)."""
    monkeypatch.setenv("OTEL_BSP_SCHEDULE_DELAY", "50")  # the SDK's batch delay, in ms
    with otlp_receiver() as receiving:
        yield receiving
        start_telemetry(TelemetrySettings(), service_name=SERVICE)


@pytest.fixture
def traced(receiver: OtlpReceiver) -> OtlpReceiver:
    """Tracing on for the process, every trace recorded, sent to the receiver it returns."""
    telemetry = TelemetrySettings(otlp_endpoint=receiver.endpoint, trace_sample_ratio=1)
    start_telemetry(telemetry, service_name=SERVICE)
    return receiver
