"""The access policy: secure by default, checked by the middleware before routing.

test_auth.py runs every token refusal under the policy too; these tests cover what only the
policy does: public paths, the internal prefix, routes without any auth dependency, and the
dependencies reusing the middleware's verdict.
"""

import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from smplcore import (
    JSONAPI_MEDIA_TYPE,
    AccessPolicy,
    CoreSettings,
    RequestContextMiddleware,
    issue_internal_token,
)

TokenFactory = Callable[..., str]
POLICY = AccessPolicy(public_paths={"/plain"}, internal_prefix="/internal")


@pytest.fixture
def client(settings: CoreSettings, app_factory: Callable[..., FastAPI]) -> Iterator[TestClient]:
    with TestClient(app_factory(settings, POLICY), base_url="http://testserver") as test_client:
        yield test_client


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def assert_unauthorized(response: Any, assert_document: Callable[[object], None]) -> None:
    assert response.status_code == 401, response.text
    assert response.headers["content-type"] == JSONAPI_MEDIA_TYPE
    assert response.headers["www-authenticate"].startswith('Bearer realm="widget-service"')
    assert response.headers["x-request-id"]
    assert_document(response.json())


def test_a_public_path_needs_no_token(client: TestClient) -> None:
    response = client.get("/plain")
    assert response.status_code == 200
    assert response.json() == {"meta": {"ok": True}}


@pytest.mark.parametrize("path", ["/search?limit=1", "/sync-page", "/boom", "/plain/", "/nowhere"])
def test_every_other_path_needs_a_token_even_without_an_auth_dependency(
    client: TestClient, assert_document: Callable[[object], None], path: str
) -> None:
    """Routes that declare no auth dependency, and paths no route serves, are refused alike."""
    assert_unauthorized(client.get(path), assert_document)


@pytest.mark.parametrize("body", [b"{not json", b'{"data": {"type": 7}}', b""])
def test_a_protected_route_refuses_a_request_without_a_token_before_reading_its_body(
    client: TestClient, assert_document: Callable[[object], None], body: bytes
) -> None:
    """401 first, whatever the body: a malformed one is not parsed for an anonymous caller."""
    response = client.post(
        "/v1/widgets", content=body, headers={"Content-Type": JSONAPI_MEDIA_TYPE}
    )
    assert_unauthorized(response, assert_document)


def test_with_a_token_an_unknown_path_is_a_404(
    client: TestClient, account_token: TokenFactory
) -> None:
    assert client.get("/nowhere", headers=bearer(account_token())).status_code == 404


def test_a_route_without_an_auth_dependency_is_served_with_a_token(
    client: TestClient, account_token: TokenFactory
) -> None:
    response = client.get("/search?limit=3", headers=bearer(account_token()))
    assert response.status_code == 200
    assert response.json() == {"meta": {"limit": 3}}


def test_the_openapi_document_and_docs_are_public(client: TestClient) -> None:
    assert client.get("/openapi.json").status_code == 200
    assert client.get("/docs").status_code == 200
    assert client.get("/redoc").status_code == 200


def test_internal_paths_need_an_internal_token(
    client: TestClient,
    settings: CoreSettings,
    account_token: TokenFactory,
    assert_document: Callable[[object], None],
) -> None:
    assert_unauthorized(client.get("/internal/ping"), assert_document)
    assert_unauthorized(
        client.get("/internal/ping", headers=bearer(account_token())), assert_document
    )
    token = issue_internal_token(settings, audience="widget-service")
    response = client.get("/internal/ping", headers=bearer(token))
    assert response.status_code == 200
    assert response.json() == {"meta": {"caller": "widget-service"}}


def test_the_dependencies_reuse_the_middlewares_verification(
    client: TestClient, account_token: TokenFactory, decoded_tokens: list[str]
) -> None:
    """The middleware verifies the token; CurrentAccount and require_feature do not again."""
    token = account_token(tier="team")
    created = client.post(
        "/v1/widgets",
        json={"data": {"type": "widgets", "attributes": {"name": "a"}}},
        headers={**bearer(token), "Content-Type": JSONAPI_MEDIA_TYPE},
    )
    assert created.status_code == 201, created.text
    assert client.get("/v1/widgets", headers=bearer(token)).status_code == 200
    assert decoded_tokens == [token]


def test_require_feature_still_refuses_a_tier_without_the_feature(
    client: TestClient, account_token: TokenFactory, assert_document: Callable[[object], None]
) -> None:
    response = client.get("/v1/widgets/1/export", headers=bearer(account_token(tier="free")))
    assert response.status_code == 403
    assert response.json()["errors"][0]["code"] == "feature_not_in_tier"
    assert_document(response.json())


def test_the_request_line_names_the_verified_caller(
    client: TestClient,
    settings: CoreSettings,
    account_token: TokenFactory,
    capsys: pytest.CaptureFixture[str],
) -> None:
    client.get("/search?limit=1", headers=bearer(account_token(account_id="acct-42")))
    client.get(
        "/internal/ping", headers=bearer(issue_internal_token(settings, audience="widget-service"))
    )
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line]
    requests = {line["path"]: line for line in lines if line.get("event") == "request"}
    assert requests["/search"]["account_id"] == "acct-42"
    assert requests["/internal/ping"]["caller"] == "widget-service"
    assert "account_id" not in requests["/internal/ping"]


@pytest.mark.parametrize(
    ("path", "internal"),
    [("/internal", True), ("/internal/ping", True), ("/internals", False), ("/v1/x", False)],
)
def test_the_internal_prefix_matches_whole_segments(path: str, *, internal: bool) -> None:
    assert POLICY.is_internal(path) is internal
    assert AccessPolicy().is_internal(path) is False


@pytest.mark.parametrize(
    "arguments",
    [
        {"public_paths": frozenset({"livez"})},
        {"internal_prefix": "internal"},
        {"internal_prefix": "/internal/"},
        {"internal_prefix": "/"},
    ],
)
def test_a_malformed_policy_is_refused(arguments: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="must"):
        AccessPolicy(**arguments)


def test_public_paths_may_be_any_collection() -> None:
    policy = AccessPolicy(public_paths=["/livez", "/readyz"])
    assert policy.public_paths == frozenset({"/livez", "/readyz"})
    assert policy.with_public_paths("/docs", None).public_paths == {"/livez", "/readyz", "/docs"}


def test_the_middleware_needs_a_verifier_with_a_policy() -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:  # never called
        raise AssertionError

    with pytest.raises(ValueError, match="verifier"):
        RequestContextMiddleware(app, access=AccessPolicy())
