"""The subscription catalog, require_feature and feature_route."""

from collections.abc import Callable
from typing import Annotated, Any

import pytest
from fastapi import APIRouter, Body, Depends, FastAPI, Request
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient

from smplcore import (
    DEFAULT_CATALOG,
    JSONAPI_MEDIA_TYPE,
    AccessPolicy,
    Catalog,
    CoreSettings,
    Tier,
    current_account,
    feature_route,
    install_core,
    load_catalog,
    require_feature,
)
from smplcore.catalog import required_feature

Headers = Callable[..., dict[str, str]]


def test_default_catalog_tiers_features_and_limits() -> None:
    assert DEFAULT_CATALOG.tier_names == ("free", "team", "enterprise")
    for name in ("free", "team", "enterprise"):
        assert DEFAULT_CATALOG.allows(name, "widgets")
    assert not DEFAULT_CATALOG.allows("free", "widgets.export")
    assert DEFAULT_CATALOG.allows("team", "widgets.export")
    assert DEFAULT_CATALOG.allows("enterprise", "widgets.export")
    assert DEFAULT_CATALOG.limit("free", "widgets.max") == 100
    assert DEFAULT_CATALOG.limit("team", "widgets.max") == 10_000
    assert DEFAULT_CATALOG.limit("enterprise", "widgets.max") is None  # unlimited
    assert "widgets" in DEFAULT_CATALOG.products
    tier = DEFAULT_CATALOG.tier("widgets", "team")
    assert isinstance(tier, Tier)
    assert tier.features == frozenset({"widgets", "widgets.export"})
    assert "reports" in DEFAULT_CATALOG.features
    assert DEFAULT_CATALOG.features_of("free") == frozenset({"widgets"})
    assert load_catalog() == DEFAULT_CATALOG


def test_unknown_tier_or_feature() -> None:
    assert not DEFAULT_CATALOG.allows("platinum", "widgets")
    assert not DEFAULT_CATALOG.allows("enterprise", "teleport")
    assert DEFAULT_CATALOG.limit("platinum", "widgets.max") is None
    assert DEFAULT_CATALOG.features_of("platinum") == frozenset()
    with pytest.raises(KeyError):
        DEFAULT_CATALOG.tier("widgets", "platinum")


def test_catalog_from_toml() -> None:
    catalog = Catalog.from_toml(
        """
        tiers = ["basic", "pro"]
        [products.maps.tiers.basic]
        features = ["maps"]
        [products.maps.tiers.pro]
        features = ["maps", "maps.3d"]
        limits = { "maps.max" = 5 }
        """
    )
    assert catalog.allows("pro", "maps.3d")
    assert not catalog.allows("basic", "maps.3d")
    assert catalog.limit("pro", "maps.max") == 5
    assert catalog.products["maps"].title == "maps"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("tiers = []", "tiers"),
        ('tiers = ["a"]\n[products.p.tiers.b]\nfeatures = []', "not one of"),
        ('tiers = ["a"]\n[products.p.tiers.a]\nfeatures = [1]', "features"),
        ('tiers = ["a"]\n[products.p.tiers.a]\nlimits = { x = -1 }', "limits"),
        ('tiers = ["a"]\n[products.p.tiers.a]\nlimits = { x = true }', "limits"),
        (
            'tiers = ["a"]\n[products.p.tiers.a]\nlimits = { x = 1 }\n'
            "[products.q.tiers.a]\nlimits = { x = 2 }",
            "set twice",
        ),
    ],
)
def test_malformed_catalogs_are_refused(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Catalog.from_toml(text)


def test_require_feature_refuses_a_tier_without_it(
    client: TestClient, auth_headers: Headers, assert_document: Callable[[object], None]
) -> None:
    response = client.get("/v1/widgets/1/export", headers=auth_headers(tier="free"))
    assert response.status_code == 403
    assert response.headers["content-type"] == JSONAPI_MEDIA_TYPE
    body = response.json()
    assert_document(body)
    assert body["errors"][0]["code"] == "feature_not_in_tier"
    assert "widgets.export" in body["errors"][0]["detail"]
    allowed = client.get("/v1/widgets/1/export", headers=auth_headers(tier="team"))
    assert allowed.status_code == 200
    assert allowed.json() == {"meta": {"exported": "1"}}


def test_require_feature_needs_a_token(client: TestClient) -> None:
    assert client.get("/v1/widgets/1/export").status_code == 401


def test_custom_catalog_via_install_core(settings: CoreSettings, auth_headers: Headers) -> None:
    catalog = Catalog.from_toml(
        'tiers = ["free", "team", "enterprise"]\n[products.x.tiers.free]\nfeatures = ["beta"]\n'
    )
    app = FastAPI()
    install_core(app, settings, catalog=catalog, access=AccessPolicy())

    @app.get("/beta", dependencies=[Depends(require_feature("beta"))])
    async def beta() -> dict[str, Any]:
        return {"meta": {"ok": True}}

    with TestClient(app) as client:
        assert client.get("/beta", headers=auth_headers(tier="free")).status_code == 200
        assert client.get("/beta", headers=auth_headers(tier="team")).status_code == 403


def test_require_feature_refuses_an_empty_name() -> None:
    with pytest.raises(ValueError, match="feature"):
        require_feature("")


def test_feature_route_refuses_a_tier_without_it_before_reading_the_body(
    settings: CoreSettings, auth_headers: Headers, assert_document: Callable[[object], None]
) -> None:
    app = FastAPI()
    install_core(app, settings, access=AccessPolicy())
    router = APIRouter(prefix="/reports", route_class=feature_route("widgets.export"))
    received: list[object] = []

    @router.post("")
    async def create_report(
        request: Request, document: Annotated[dict[str, Any], Body()]
    ) -> dict[str, Any]:
        received.append(document)
        return {"meta": {"account": (await current_account(request)).account_id}}

    app.include_router(router)
    with TestClient(app) as client:
        refused = client.post("/reports", content=b"{not json", headers=auth_headers(tier="free"))
        granted = client.post("/reports", json={"a": 1}, headers=auth_headers(tier="team"))
        openapi = client.get("/openapi.json").json()
    assert refused.status_code == 403, refused.text
    assert refused.json()["errors"][0]["code"] == "feature_not_in_tier"
    assert_document(refused.json())
    assert granted.status_code == 200, granted.text
    assert granted.json() == {"meta": {"account": "acct-1"}}
    assert received == [{"a": 1}]  # the refused body was never read, nor the handler run
    assert "403" in openapi["paths"]["/reports"]["post"]["responses"]


def test_feature_route_names_its_feature_and_refuses_an_empty_one() -> None:
    route = APIRoute("/x", lambda: None)
    assert required_feature(route) is None
    feature_route_class = feature_route("reports")
    assert issubclass(feature_route_class, APIRoute)
    assert required_feature(feature_route_class("/x", lambda: None)) == "reports"
    with pytest.raises(ValueError, match="feature"):
        feature_route("")
