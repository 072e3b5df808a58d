"""A service app wired with install_core: every answer is a valid JSON:API document."""

import json
from collections.abc import Callable
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from jsonschema.protocols import Validator

from smplcore import JSONAPI_MEDIA_TYPE, CoreSettings, install_error_handlers
from smplcore.errors import GENERIC_500_DETAIL

Headers = Callable[..., dict[str, str]]
JSONAPI = {"Content-Type": JSONAPI_MEDIA_TYPE, "Accept": JSONAPI_MEDIA_TYPE}


@pytest.fixture
def check(assert_document: Callable[[object], None]) -> Callable[..., dict[str, Any]]:
    def check_response(response: Any, status: int) -> dict[str, Any]:
        assert response.status_code == status, response.text
        assert response.headers["content-type"] == JSONAPI_MEDIA_TYPE
        assert response.headers["x-request-id"]
        body: dict[str, Any] = response.json()
        assert_document(body)
        return body

    return check_response


def create(client: TestClient, headers: dict[str, str], name: str = "w") -> dict[str, Any]:
    document = {"data": {"type": "widgets", "attributes": {"name": name, "size": 3}}}
    response = client.post("/v1/widgets", json=document, headers={**JSONAPI, **headers})
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


def test_create_get_update_delete(
    client: TestClient,
    auth_headers: Headers,
    check: Callable[..., dict[str, Any]],
    create_validator: Validator,
    update_validator: Validator,
) -> None:
    headers = {**JSONAPI, **auth_headers()}
    new: dict[str, Any] = {"data": {"type": "widgets", "attributes": {"name": "gear", "size": 3}}}
    assert not list(create_validator.iter_errors(new))
    created = check(client.post("/v1/widgets", json=new, headers=headers), 201)
    widget_id = created["data"]["id"]
    assert created["data"]["attributes"] == {"name": "gear", "size": 3}
    assert created["data"]["links"]["self"].endswith(f"/v1/widgets/{widget_id}")

    fetched = check(client.get(f"/v1/widgets/{widget_id}", headers=headers), 200)
    assert fetched["data"] == created["data"]
    assert fetched["links"]["self"] == f"http://testserver/v1/widgets/{widget_id}"

    patch: dict[str, Any] = {
        "data": {"type": "widgets", "id": widget_id, "attributes": {"size": 9}}
    }
    assert not list(update_validator.iter_errors(patch))
    updated = check(client.patch(f"/v1/widgets/{widget_id}", json=patch, headers=headers), 200)
    assert updated["data"]["attributes"] == {"name": "gear", "size": 9}

    deleted = client.delete(f"/v1/widgets/{widget_id}", headers=headers)
    assert deleted.status_code == 204
    assert deleted.content == b""
    assert deleted.headers["x-request-id"]
    check(client.get(f"/v1/widgets/{widget_id}", headers=headers), 404)


def test_list_with_pagination(
    client: TestClient, auth_headers: Headers, check: Callable[..., dict[str, Any]]
) -> None:
    headers = auth_headers()
    for i in range(5):
        create(client, headers, f"w{i}")
    body = check(client.get("/v1/widgets?page[number]=2&page[size]=2", headers=headers), 200)
    assert [r["id"] for r in body["data"]] == ["3", "4"]
    assert body["meta"] == {"total": 5, "page": {"number": 2, "size": 2, "pages": 3}}
    assert "page[number]=3" in body["links"]["next"]
    assert "page[number]=1" in body["links"]["prev"]
    # another account sees nothing
    other = check(client.get("/v1/widgets", headers=auth_headers(account_id="acct-2")), 200)
    assert other["data"] == []


@pytest.mark.parametrize(
    ("query", "parameter"),
    [
        ("page[number]=0", "page[number]"),
        ("page[number]=x", "page[number]"),
        ("page[size]=101", "page[size]"),
        ("page[size]=0", "page[size]"),
    ],
)
def test_bad_page_parameters(
    client: TestClient,
    auth_headers: Headers,
    check: Callable[..., dict[str, Any]],
    query: str,
    parameter: str,
) -> None:
    body = check(client.get(f"/v1/widgets?{query}", headers=auth_headers()), 400)
    assert body["errors"][0]["source"] == {"parameter": parameter}
    assert body["errors"][0]["status"] == "400"


@pytest.mark.parametrize(
    ("query", "status", "expected"),
    [
        ("", 200, {"number": 1, "size": 20}),
        ("?page[number]=3&page[size]=100", 200, {"number": 3, "size": 100}),
        ("?page[number]=-1", 400, "page[number]"),
        ("?page[size]=abc", 400, "page[size]"),
        ("?page[size]=500", 400, "page[size]"),
    ],
)
def test_sync_page_params(
    client: TestClient,
    check: Callable[..., dict[str, Any]],
    query: str,
    status: int,
    expected: Any,
) -> None:
    with pytest.warns(DeprecationWarning, match="PageDep"):
        body = check(client.get(f"/sync-page{query}"), status)
    if status == 200:
        assert body["meta"] == expected
    else:
        assert body["errors"][0]["source"] == {"parameter": expected}


@pytest.mark.parametrize(
    ("attributes", "pointer"),
    [
        ({"size": 3}, "/data/attributes/name"),
        ({"name": ""}, "/data/attributes/name"),
        ({"name": "ok", "size": 0}, "/data/attributes/size"),
        ({"name": "ok", "size": "big"}, "/data/attributes/size"),
    ],
)
def test_body_validation_points_at_the_member(
    client: TestClient,
    auth_headers: Headers,
    check: Callable[..., dict[str, Any]],
    attributes: dict[str, Any],
    pointer: str,
) -> None:
    document = {"data": {"type": "widgets", "attributes": attributes}}
    response = client.post("/v1/widgets", json=document, headers={**JSONAPI, **auth_headers()})
    body = check(response, 422)
    assert [e["source"]["pointer"] for e in body["errors"]] == [pointer]
    assert body["errors"][0]["status"] == "422"


def test_missing_members_and_bodies(
    client: TestClient, auth_headers: Headers, check: Callable[..., dict[str, Any]]
) -> None:
    headers = {**JSONAPI, **auth_headers()}
    body = check(
        client.post("/v1/widgets", json={"data": {"type": "widgets"}}, headers=headers), 422
    )
    assert body["errors"][0]["source"] == {"pointer": "/data/attributes"}
    body = check(client.post("/v1/widgets", json={}, headers=headers), 422)
    assert body["errors"][0]["source"] == {"pointer": "/data"}
    body = check(client.post("/v1/widgets", headers=headers), 422)
    assert body["errors"][0]["source"] == {"pointer": ""}
    body = check(client.post("/v1/widgets", content=b'{"data": ', headers=headers), 400)
    assert body["errors"][0]["code"] == "json_invalid"


def test_two_invalid_members_are_two_errors(
    client: TestClient, auth_headers: Headers, check: Callable[..., dict[str, Any]]
) -> None:
    document = {"data": {"type": "widgets", "attributes": {"name": "", "size": 0}}}
    response = client.post("/v1/widgets", json=document, headers={**JSONAPI, **auth_headers()})
    body = check(response, 422)
    pointers = sorted(e["source"]["pointer"] for e in body["errors"])
    assert pointers == ["/data/attributes/name", "/data/attributes/size"]


def test_query_parameter_validation_is_400_with_parameter(
    client: TestClient, check: Callable[..., dict[str, Any]]
) -> None:
    body = check(client.get("/search?limit=99"), 400)
    assert body["errors"][0]["source"] == {"parameter": "limit"}
    body = check(client.get("/search"), 400)
    assert body["errors"][0]["source"] == {"parameter": "limit"}


def test_type_and_id_conflicts_are_409(
    client: TestClient, auth_headers: Headers, check: Callable[..., dict[str, Any]]
) -> None:
    headers = {**JSONAPI, **auth_headers()}
    wrong_type = {"data": {"type": "gadgets", "attributes": {"name": "a"}}}
    body = check(client.post("/v1/widgets", json=wrong_type, headers=headers), 409)
    assert body["errors"][0]["source"] == {"pointer": "/data/type"}
    widget_id = create(client, headers)["data"]["id"]
    wrong_id = {"data": {"type": "widgets", "id": "999", "attributes": {"name": "b"}}}
    body = check(client.patch(f"/v1/widgets/{widget_id}", json=wrong_id, headers=headers), 409)
    assert body["errors"][0]["source"] == {"pointer": "/data/id"}


def test_unknown_route_and_wrong_method(
    client: TestClient, check: Callable[..., dict[str, Any]]
) -> None:
    body = check(client.get("/nowhere"), 404)
    assert body["errors"][0]["code"] == "not_found"
    response = client.put("/plain")
    body = check(response, 405)
    assert body["errors"][0]["code"] == "method_not_allowed"
    assert response.headers["allow"] == "GET"


@pytest.mark.parametrize(
    ("path", "allowed"),
    [("/v1/widgets", "GET, POST"), ("/v1/widgets/1", "DELETE, GET, PATCH")],
)
def test_405_allows_every_method_the_path_accepts(
    client: TestClient,
    auth_headers: Callable[..., dict[str, str]],
    check: Callable[..., dict[str, Any]],
    path: str,
    allowed: str,
) -> None:
    """FastAPI declares one route per method; Starlette's 405 names only the first's."""
    response = client.put(path, json={}, headers=auth_headers())
    check(response, 405)
    assert response.headers["allow"] == allowed


def test_smplkit_error_from_a_route(
    client: TestClient, check: Callable[..., dict[str, Any]]
) -> None:
    body = check(client.get("/unavailable"), 503)
    assert body["errors"][0]["detail"] == "The database is down"


def test_unexpected_exception_is_a_generic_500(
    client: TestClient, check: Callable[..., dict[str, Any]], capsys: pytest.CaptureFixture[str]
) -> None:
    capsys.readouterr()
    response = client.get("/boom", headers={"X-Request-ID": "trace-500"})
    body = check(response, 500)
    assert response.headers["x-request-id"] == "trace-500"
    assert body["errors"][0]["detail"] == GENERIC_500_DETAIL
    assert "hunter2" not in response.text
    assert "Traceback" not in response.text
    assert "RuntimeError" not in response.text
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    logged = [line for line in lines if "exception" in line]
    assert logged, lines
    assert logged[0]["request_id"] == "trace-500"
    assert "RuntimeError: database password is hunter2" in logged[0]["exception"]
    request_line = [line for line in lines if line["event"] == "request"]
    assert request_line[0]["status"] == 500
    assert request_line[0]["request_id"] == "trace-500"


def test_response_without_model_gets_the_media_type(
    client: TestClient, check: Callable[..., dict[str, Any]]
) -> None:
    assert check(client.get("/plain"), 200) == {"meta": {"ok": True}}


def test_error_handlers_alone_without_middleware(
    settings: CoreSettings, assert_document: Callable[[object], None]
) -> None:
    app = FastAPI()
    install_error_handlers(app)

    @app.get("/boom")
    async def boom() -> None:
        raise RuntimeError("secret")

    with TestClient(app, raise_server_exceptions=False) as client:
        response = client.get("/boom")
        assert response.status_code == 500
        assert response.headers["content-type"] == JSONAPI_MEDIA_TYPE
        assert "secret" not in response.text
        assert_document(response.json())
        missing = client.get("/missing")
        assert missing.status_code == 404
        assert_document(missing.json())


def test_header_and_path_parameter_errors(
    settings: CoreSettings, check: Callable[..., dict[str, Any]]
) -> None:
    from typing import Annotated

    from fastapi import Header

    from smplcore import AccessPolicy, install_core

    app = FastAPI()
    install_core(app, settings, access=AccessPolicy(public_paths={"/items/abc", "/items/1"}))

    @app.get("/items/{item_id}")
    async def item(item_id: int, x_tenant: Annotated[int, Header()] = 0) -> dict[str, Any]:
        return {"meta": {"item": item_id, "tenant": x_tenant}}

    with TestClient(app) as client:
        body = check(client.get("/items/abc"), 400)
        assert body["errors"][0]["source"] == {"parameter": "item_id"}
        assert "path parameter" in body["errors"][0]["detail"]
        body = check(client.get("/items/1", headers={"X-Tenant": "nope"}), 400)
        assert body["errors"][0]["source"] == {"header": "x-tenant"}
        assert check(client.get("/items/1"), 200) == {"meta": {"item": 1, "tenant": 0}}
