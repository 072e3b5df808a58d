"""Account and internal tokens: every forged, expired, mis-addressed or malformed one is refused."""

import base64
import json
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from fastapi import FastAPI, Request
from fastapi.testclient import TestClient

from smplcore import (
    JSONAPI_MEDIA_TYPE,
    AccessPolicy,
    AccountContext,
    CoreSettings,
    InternalCaller,
    TokenVerifier,
    UnauthorizedError,
    issue_internal_token,
)
from smplcore.auth import VERIFIER_STATE_KEY

TokenFactory = Callable[..., str]
WIDGETS = "/v1/widgets"
INTERNAL = "/internal/ping"
OTHER_KEY = "a-completely-different-signing-secret-" + "0123456789abcdef" * 3


@pytest.fixture(params=["dependencies", "access-policy"])
def client(
    request: pytest.FixtureRequest,
    settings: CoreSettings,
    app_factory: Callable[..., FastAPI],
) -> Iterator[TestClient]:
    """Every token test runs twice: checked by the routes' dependencies alone, and checked first
    by the middleware under an access policy (the dependencies then reuse its verdict)."""
    access = AccessPolicy(internal_prefix="/internal") if request.param == "access-policy" else None
    with TestClient(app_factory(settings, access), base_url="http://testserver") as test_client:
        yield test_client


def refused(
    response: Any, assert_document: Callable[[object], None], status: int = 401
) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == JSONAPI_MEDIA_TYPE
    assert response.headers["x-request-id"]
    body: dict[str, Any] = response.json()
    assert_document(body)
    assert body["errors"][0]["status"] == str(status)
    if status == 401:
        challenge = response.headers["www-authenticate"]
        assert challenge.startswith('Bearer realm="widget-service"')
    return body


def b64(data: dict[str, Any]) -> str:
    raw = json.dumps(data).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


# ---------------------------------------------------------------------------- account tokens


def test_valid_account_token_is_accepted(client: TestClient, account_token: TokenFactory) -> None:
    response = client.get(WIDGETS, headers={"Authorization": f"Bearer {account_token()}"})
    assert response.status_code == 200
    lower = client.get(WIDGETS, headers={"Authorization": f"bearer {account_token()}"})
    assert lower.status_code == 200


def test_no_token(client: TestClient, assert_document: Callable[[object], None]) -> None:
    response = client.get(WIDGETS)
    refused(response, assert_document)
    assert response.headers["www-authenticate"] == 'Bearer realm="widget-service"'


@pytest.mark.parametrize(
    "header",
    ["Basic dXNlcjpwYXNz", "Bearer", "Bearer ", "Bearer a b", "Token abc", "Bearer {x}"],
)
def test_malformed_authorization_header(
    client: TestClient, assert_document: Callable[[object], None], header: str
) -> None:
    response = client.get(WIDGETS, headers={"Authorization": header})
    refused(response, assert_document)
    assert 'error="invalid_request"' in response.headers["www-authenticate"]


def test_garbage_token(client: TestClient, assert_document: Callable[[object], None]) -> None:
    response = client.get(WIDGETS, headers={"Authorization": "Bearer not.a.jwt"})
    body = refused(response, assert_document)
    assert body["errors"][0]["detail"] == "The token is malformed"


def test_overlong_token(client: TestClient, assert_document: Callable[[object], None]) -> None:
    response = client.get(WIDGETS, headers={"Authorization": "Bearer " + "a" * 9000})
    refused(response, assert_document)


def forged_signature(token: str) -> str:
    head, payload, signature = token.split(".")
    flipped = ("A" if signature[0] != "A" else "B") + signature[1:]
    return f"{head}.{payload}.{flipped}"


def tampered_payload(token: str) -> str:
    head, _, signature = token.split(".")
    claims = jwt.decode(token, options={"verify_signature": False})
    claims["tier"] = "enterprise"
    return f"{head}.{b64(claims)}.{signature}"


def alg_none(token: str) -> str:
    claims = jwt.decode(token, options={"verify_signature": False})
    return f"{b64({'alg': 'none', 'typ': 'JWT'})}.{b64(claims)}."


@pytest.mark.parametrize(
    ("make", "detail"),
    [
        (lambda sign: forged_signature(sign()), "signature"),
        (lambda sign: tampered_payload(sign()), "signature"),
        (lambda sign: sign(key=OTHER_KEY), "signature"),
        (lambda sign: alg_none(sign()), "algorithm"),
        (lambda sign: sign(algorithm="HS512"), "algorithm"),
        (lambda sign: sign(exp=int(time.time()) - 120), "expired"),
        (lambda sign: sign(nbf=int(time.time()) + 120), "not yet valid"),
        (lambda sign: sign(iat=int(time.time()) + 120), "not yet valid"),
        (lambda sign: sign(aud="another-api"), "not addressed"),
        (lambda sign: sign(iss="evil-identity"), "issuer"),
        (lambda sign: sign(tier=None), "'tier'"),
        (lambda sign: sign(account_id=None), "'account_id'"),
        (lambda sign: sign(exp=None), "'exp'"),
        (lambda sign: sign(sub=None), "'sub'"),
        (lambda sign: sign(token_use=None), "'token_use'"),
        (lambda sign: sign(token_use="internal"), "not an account token"),
        (lambda sign: sign(tier=7), "must be strings"),
        (lambda sign: sign(account_id=""), "must be strings"),
    ],
    ids=[
        "bad-signature",
        "tampered-payload",
        "wrong-key",
        "alg-none",
        "alg-outside-allow-list",
        "expired",
        "nbf-in-future",
        "iat-in-future",
        "wrong-audience",
        "wrong-issuer",
        "missing-tier",
        "missing-account-id",
        "missing-exp",
        "missing-sub",
        "missing-token-use",
        "wrong-token-use",
        "tier-not-string",
        "empty-account-id",
    ],
)
def test_bad_account_tokens_are_refused(
    client: TestClient,
    assert_document: Callable[[object], None],
    account_token: TokenFactory,
    make: Callable[[TokenFactory], str],
    detail: str,
) -> None:
    token = make(account_token)
    response = client.get(WIDGETS, headers={"Authorization": f"Bearer {token}"})
    body = refused(response, assert_document)
    assert detail in body["errors"][0]["detail"]
    assert 'error="invalid_token"' in response.headers["www-authenticate"]


def test_small_clock_skew_is_tolerated(client: TestClient, account_token: TokenFactory) -> None:
    token = account_token(exp=int(time.time()) - 5, iat=int(time.time()) + 5)
    response = client.get(WIDGETS, headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200


def test_internal_token_on_a_public_endpoint_is_refused(
    client: TestClient, assert_document: Callable[[object], None], settings: CoreSettings
) -> None:
    token = issue_internal_token(settings, audience="widget-service")
    refused(client.get(WIDGETS, headers={"Authorization": f"Bearer {token}"}), assert_document)


def test_internal_claims_signed_with_the_account_key_are_still_refused(
    client: TestClient,
    assert_document: Callable[[object], None],
    account_token: TokenFactory,
) -> None:
    # even a token carrying every account claim is refused when token_use says internal
    token = account_token(token_use="internal")
    refused(client.get(WIDGETS, headers={"Authorization": f"Bearer {token}"}), assert_document)


# ---------------------------------------------------------------------------- internal tokens


def test_issued_internal_token(settings: CoreSettings) -> None:
    token = issue_internal_token(settings, audience="billing-service")
    claims = jwt.decode(
        token,
        settings.auth.internal_token_secret.get_secret_value(),
        algorithms=["HS256"],
        audience="billing-service",
    )
    assert claims["iss"] == claims["sub"] == "widget-service"
    assert claims["token_use"] == "internal"
    assert 0 < claims["exp"] - claims["iat"] <= 300
    short = jwt.decode(token, options={"verify_signature": False})
    assert short["aud"] == "billing-service"
    ten = issue_internal_token(settings, audience="billing-service", ttl_seconds=10)
    ten_claims = jwt.decode(ten, options={"verify_signature": False})
    assert ten_claims["exp"] - ten_claims["iat"] == 10


@pytest.mark.parametrize(("audience", "ttl"), [("Not Kebab", None), ("ok", 0), ("ok", 301)])
def test_issue_internal_token_refuses_bad_arguments(
    settings: CoreSettings, audience: str, ttl: int | None
) -> None:
    with pytest.raises(ValueError, match=r"kebab|ttl"):
        issue_internal_token(settings, audience=audience, ttl_seconds=ttl)


def test_internal_token_from_another_service_is_accepted(
    client: TestClient, settings: CoreSettings
) -> None:
    caller_settings = settings.model_copy(update={"service_name": "billing-service"})
    token = issue_internal_token(caller_settings, audience="widget-service")
    response = client.get(INTERNAL, headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200
    assert response.json() == {"meta": {"caller": "billing-service"}}


@pytest.mark.parametrize(
    ("make", "detail"),
    [
        (lambda sign: sign(aud="other-service"), "not addressed"),
        (lambda sign: sign(key=OTHER_KEY), "signature"),
        (lambda sign: forged_signature(sign()), "signature"),
        (lambda sign: alg_none(sign()), "algorithm"),
        (lambda sign: sign(algorithm="HS512"), "algorithm"),
        (lambda sign: sign(exp=int(time.time()) - 120), "expired"),
        (lambda sign: sign(nbf=int(time.time()) + 120), "not yet valid"),
        (lambda sign: sign(token_use=None), "'token_use'"),
        (lambda sign: sign(iat=None), "'iat'"),
        (lambda sign: sign(token_use="account"), "not an internal token"),
        (lambda sign: sign(sub="someone-else"), "sub must equal"),
        (lambda sign: sign(iss="Bad Name", sub="Bad Name"), "not a service name"),
        (lambda sign: sign(iss=7), "sub must equal"),
        (lambda sign: sign(sub=7), "subject is invalid"),
        (lambda sign: sign(exp=int(time.time()) + 3600), "lives longer"),
    ],
    ids=[
        "wrong-audience",
        "wrong-key",
        "bad-signature",
        "alg-none",
        "alg-outside-allow-list",
        "expired",
        "nbf-in-future",
        "missing-token-use",
        "missing-iat",
        "wrong-token-use",
        "sub-not-iss",
        "issuer-not-a-service",
        "issuer-not-a-string",
        "subject-not-a-string",
        "too-long-lived",
    ],
)
def test_bad_internal_tokens_are_refused(
    client: TestClient,
    assert_document: Callable[[object], None],
    internal_token: TokenFactory,
    make: Callable[[TokenFactory], str],
    detail: str,
) -> None:
    response = client.get(INTERNAL, headers={"Authorization": f"Bearer {make(internal_token)}"})
    body = refused(response, assert_document)
    assert detail in body["errors"][0]["detail"]


def test_account_token_on_an_internal_endpoint_is_refused(
    client: TestClient, assert_document: Callable[[object], None], account_token: TokenFactory
) -> None:
    response = client.get(INTERNAL, headers={"Authorization": f"Bearer {account_token()}"})
    refused(response, assert_document)


def test_no_token_on_an_internal_endpoint(
    client: TestClient, assert_document: Callable[[object], None]
) -> None:
    refused(client.get(INTERNAL), assert_document)


# ---------------------------------------------------------------------------- the cache


@pytest.fixture
def verifier(settings: CoreSettings) -> TokenVerifier:
    return TokenVerifier(settings)


def test_cache_serves_repeat_tokens(
    verifier: TokenVerifier, account_token: TokenFactory, decoded_tokens: list[str]
) -> None:
    calls = decoded_tokens
    token = account_token()
    first = verifier.verify_account(token)
    assert verifier.verify_account(token) is first
    assert first == AccountContext(subject="user-1", account_id="acct-1", tier="free")
    assert len(calls) == 1


def test_cache_never_accepts_an_expired_token(
    verifier: TokenVerifier, account_token: TokenFactory, internal_token: TokenFactory
) -> None:
    now = time.time()
    token = account_token(exp=int(now) + 60)
    internal = internal_token(exp=int(now) + 60)
    verifier.verify_account(token)
    assert verifier.verify_internal(internal) == InternalCaller(service="billing-service")
    verifier.clock = lambda: now + 60 + 31  # past exp and the 30 s leeway
    for verify, value in ((verifier.verify_account, token), (verifier.verify_internal, internal)):
        with pytest.raises(UnauthorizedError) as caught:
            verify(value)
        assert caught.value.detail == "The token has expired"
    assert len(verifier._verified) == 0


def test_a_cached_token_of_one_kind_never_passes_as_the_other(
    verifier: TokenVerifier, account_token: TokenFactory, internal_token: TokenFactory
) -> None:
    account, internal = account_token(), internal_token()
    verifier.verify_account(account)
    verifier.verify_internal(internal)
    with pytest.raises(UnauthorizedError):
        verifier.verify_internal(account)
    with pytest.raises(UnauthorizedError):
        verifier.verify_account(internal)


def test_the_deprecated_verifier_methods_still_verify(
    verifier: TokenVerifier, account_token: TokenFactory, internal_token: TokenFactory
) -> None:
    account_header = f"Bearer {account_token()}".encode()
    internal_header = f"Bearer {internal_token()}".encode()
    with pytest.warns(DeprecationWarning, match="account_of"):
        assert verifier.account_for_header(account_header).account_id == "acct-1"
    with pytest.warns(DeprecationWarning, match="caller_of"):
        assert verifier.caller_for_header(internal_header) == InternalCaller("billing-service")
    with pytest.warns(DeprecationWarning, match="account_of"), pytest.raises(UnauthorizedError):
        verifier.account_for_header(None)
    request = Request({"type": "http", "headers": [(b"authorization", account_header)]})
    with pytest.warns(DeprecationWarning, match="bearer_token_of"):
        assert verifier.bearer_token(request) == account_header.decode().removeprefix("Bearer ")


def test_cache_is_bounded(settings: CoreSettings, account_token: TokenFactory) -> None:
    small = settings.model_copy(
        update={"auth": settings.auth.model_copy(update={"token_cache_size": 2})}
    )
    verifier = TokenVerifier(small)
    for i in range(5):
        verifier.verify_account(account_token(sub=f"user-{i}"))
    assert len(verifier._verified) == 2


def test_cache_can_be_disabled(
    settings: CoreSettings, account_token: TokenFactory, decoded_tokens: list[str]
) -> None:
    calls = decoded_tokens
    off = settings.model_copy(
        update={"auth": settings.auth.model_copy(update={"token_cache_size": 0})}
    )
    verifier = TokenVerifier(off)
    token = account_token()
    verifier.verify_account(token)
    verifier.verify_account(token)
    assert len(calls) == 2
    assert len(verifier._verified) == 0


def test_rotated_out_key_is_refused_even_when_cached(
    client: TestClient,
    settings_factory: Callable[..., CoreSettings],
    account_token: TokenFactory,
    assert_document: Callable[[object], None],
) -> None:
    old = account_token()
    headers = {"Authorization": f"Bearer {old}"}
    assert client.get(WIDGETS, headers=headers).status_code == 200  # verified and cached
    verifier: TokenVerifier = getattr(client.app.state, VERIFIER_STATE_KEY)  # type: ignore[attr-defined]
    assert len(verifier._verified) == 1
    verifier.update_settings(settings_factory(account_token_key=OTHER_KEY))
    refused(client.get(WIDGETS, headers=headers), assert_document)
    new = account_token(key=OTHER_KEY)
    assert client.get(WIDGETS, headers={"Authorization": f"Bearer {new}"}).status_code == 200


def test_clear_cache(verifier: TokenVerifier, account_token: TokenFactory) -> None:
    verifier.verify_account(account_token())
    verifier.account_of(f"Bearer {account_token(sub='user-2')}")
    verifier.clear_cache()
    assert len(verifier._verified) == 0


# ---------------------------------------------------------------------------- asymmetric keys


def test_rs256_account_tokens(
    settings_factory: Callable[..., CoreSettings], account_claims: Callable[..., dict[str, Any]]
) -> None:
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private_pem = private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    public_pem = (
        private.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    token = jwt.encode(account_claims(tier="team"), private_pem, algorithm="RS256")
    for key in (public_pem, private_pem):  # a private key verifies with its public half
        settings = settings_factory(account_token_key=key, account_token_algorithms=("RS256",))
        assert TokenVerifier(settings).verify_account(token).tier == "team"
    verifier = TokenVerifier(
        settings_factory(account_token_key=public_pem, account_token_algorithms=("RS256",))
    )
    # algorithm confusion: an HS256 token "signed" with the public key as an HMAC secret
    header = b64({"alg": "HS256", "typ": "JWT"})
    forged = f"{header}.{b64(account_claims())}.c2lnbmF0dXJl"
    with pytest.raises(UnauthorizedError, match="algorithm"):
        verifier.verify_account(forged)


def test_importing_the_core_leaves_pyjwt_and_cryptography_unloaded() -> None:
    """Every process of a service imports the core; PyJWT (with `cryptography`) waits for the
    first app or token, so that an import stays cheap (bench: import)."""
    probe = "import sys, smplcore; print(sorted({'jwt', 'cryptography'} & set(sys.modules)))"
    result = subprocess.run(  # noqa: S603 - this interpreter, a fixed statement
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"
