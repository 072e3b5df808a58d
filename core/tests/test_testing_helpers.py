"""smplcore.testing: token factory and JSON:API assertions (and the packaged schema copy)."""

import hashlib
from importlib import resources

import httpx
import httpx2
import jwt
import pytest
from fastapi.testclient import TestClient

import smplcore
from smplcore import JSONAPI_MEDIA_TYPE, CoreSettings, TokenVerifier
from smplcore.testing import (
    assert_jsonapi_document,
    assert_jsonapi_response,
    jsonapi_schema,
    make_account_token,
)

# sha256 of the official JSON:API 1.0 schema.json (the specification's _schemas/1.0/schema.json).
OFFICIAL_SCHEMA_SHA256 = "14c462192dbdc2381ab1800043a88a8ccc2eadf3662887b6dafa755169a404f7"


def test_packaged_schema_is_byte_identical_to_the_official_one() -> None:
    packaged = resources.files("smplcore").joinpath("schemas/jsonapi-1.0.schema.json")
    assert hashlib.sha256(packaged.read_bytes()).hexdigest() == OFFICIAL_SCHEMA_SHA256
    assert jsonapi_schema()["$id"] == "https://jsonapi.org/schemas/spec/v1.0/draft"


def test_make_account_token_verifies(settings: CoreSettings) -> None:
    token = make_account_token(settings, account_id="acct-9", tier="team", subject="u-9")
    account = TokenVerifier(settings).verify_account(token)
    assert (account.account_id, account.tier, account.subject) == ("acct-9", "team", "u-9")
    expired = make_account_token(settings, account_id="a", expires_in=-100)
    with pytest.raises(smplcore.UnauthorizedError):
        TokenVerifier(settings).verify_account(expired)


def test_make_account_token_refuses_asymmetric_settings(settings: CoreSettings) -> None:
    rs = settings.model_copy(
        update={"auth": settings.auth.model_copy(update={"account_token_algorithms": ("RS256",)})}
    )
    with pytest.raises(ValueError, match="HS"):
        make_account_token(rs, account_id="a")


def test_top_level_reexports_of_the_testing_helpers_are_deprecated() -> None:
    with pytest.warns(DeprecationWarning, match=r"smplcore\.testing"):
        assert smplcore.make_account_token is make_account_token
    with pytest.warns(DeprecationWarning, match=r"smplcore\.testing"):
        assert smplcore.assert_jsonapi_document is assert_jsonapi_document
    with pytest.warns(DeprecationWarning, match=r"smplcore\.testing"):
        assert smplcore.assert_jsonapi_response is assert_jsonapi_response
    with pytest.raises(AttributeError):
        _ = smplcore.no_such_name
    assert jwt.__version__


@pytest.mark.parametrize(
    "document",
    [
        {"data": None},
        {"meta": {"total": 1}},
        {"errors": [{"status": "404"}]},
        {"data": {"type": "widgets", "id": "1", "attributes": {"name": "x"}}},
    ],
)
def test_valid_documents_pass(document: object) -> None:
    assert_jsonapi_document(document)


@pytest.mark.parametrize(
    "document",
    [
        {},
        {"data": None, "errors": []},
        {"data": {"type": "widgets"}},
        {"errors": [{"status": 404}]},
        {"data": None, "extra": 1},
        {"data": {"type": "w", "id": "1", "links": None}},
        {"errors": [{"status": "400"}, {"status": "400"}]},
        [],
    ],
)
def test_invalid_documents_fail(document: object) -> None:
    with pytest.raises(AssertionError, match="not a valid JSON:API document"):
        assert_jsonapi_document(document)


def response(
    status: int = 200,
    content: bytes = b'{"data": null}',
    content_type: str = JSONAPI_MEDIA_TYPE,
    request_id: str | None = "r-1",
) -> httpx2.Response:
    headers = {"content-type": content_type}
    if request_id:
        headers["x-request-id"] = request_id
    return httpx2.Response(status, content=content, headers=headers)


def test_assert_jsonapi_response() -> None:
    assert assert_jsonapi_response(response(), 200) == {"data": None}
    legacy = httpx.Response(200, json={"data": None}, headers={"x-request-id": "r"})
    legacy.headers["content-type"] = JSONAPI_MEDIA_TYPE
    assert assert_jsonapi_response(legacy, 200) == {"data": None}
    assert assert_jsonapi_response(response(204, b""), 204) == {}
    failures = [
        (response(), 201, "status"),
        (response(request_id=None), 200, "X-Request-ID"),
        (response(content_type="application/json"), 200, "content-type"),
        (response(content=b"nope"), 200, "not JSON"),
        (response(content=b"{}"), 200, "not a valid"),
        (response(204, b"x"), 204, "no body"),
    ]
    for resp, status, message in failures:
        with pytest.raises(AssertionError, match=message):
            assert_jsonapi_response(resp, status)


def test_assert_jsonapi_response_on_a_live_app(client: TestClient, settings: CoreSettings) -> None:
    token = make_account_token(settings, account_id="acct-1")
    body = assert_jsonapi_response(
        client.get("/v1/widgets", headers={"Authorization": f"Bearer {token}"}), 200
    )
    assert body["data"] == []


def test_jsonschema_empty_pattern_bug_and_the_fix() -> None:
    from jsonschema import Draft7Validator

    from smplcore.testing import fixed_validator_class

    schema = {"additionalProperties": False, "patternProperties": {"": True}}
    # the bug this works around: "" matches every name, yet jsonschema calls "x" additional
    assert list(Draft7Validator(schema).iter_errors({"x": 1}))
    fixed = fixed_validator_class(Draft7Validator)
    assert not list(fixed(schema).iter_errors({"x": 1}))
    # the fix still refuses what is really additional, and validates additional schemas
    strict = {"properties": {"a": True}, "patternProperties": {"^b": True}}
    assert list(fixed({**strict, "additionalProperties": False}).iter_errors({"c": 1}))
    typed = {**strict, "additionalProperties": {"type": "integer"}}
    assert list(fixed(typed).iter_errors({"c": "no"}))
    assert not list(fixed(typed).iter_errors({"a": "x", "b1": "y", "c": 3}))
    assert not list(fixed(schema).iter_errors("not an object"))
