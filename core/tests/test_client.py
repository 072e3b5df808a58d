"""InternalClient against a real core app (in-process through httpx's ASGI transport), a closed
port and a port that never answers: tokens, retries, timeouts and the errors a caller gets."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import jwt
import pytest
from fastapi import APIRouter, FastAPI, Request, Response
from pydantic import SecretStr

from smplcore import (
    AccessPolicy,
    AuthSettings,
    ClientSettings,
    CoreSettings,
    CurrentInternalCaller,
    InternalClient,
    InternalTokens,
    NotFoundError,
    ServiceUnavailableError,
    SmplkitError,
    install_core,
)

CALLER, CALLEE = "orders", "billing"
FAST = ClientSettings(connect_timeout=0.5, read_timeout=0.5, total_timeout=2, backoff_seconds=0)


ACCOUNT_KEY = "account-key-of-the-client-tests-" + "0123456789abcdef" * 2
INTERNAL_SECRET = "internal-secret-of-the-client-tests-" + "0123456789abcdef" * 2


def service_settings(name: str, **auth: Any) -> CoreSettings:
    keys = {"account_token_key": ACCOUNT_KEY, "internal_token_secret": INTERNAL_SECRET}
    return CoreSettings(service_name=name, auth=AuthSettings(**{**keys, **auth}))


class Callee:
    """The billing service: internal routes, and what reached them."""

    def __init__(self) -> None:
        self.tokens: list[str] = []
        self.request_ids: list[str | None] = []
        self.content_types: list[str | None] = []
        self.unavailable_for = 0
        self.retry_after = "0"
        self.app = FastAPI()
        install_core(
            self.app,
            service_settings(CALLEE, leeway_seconds=0),
            access=AccessPolicy(internal_prefix="/internal"),
        )
        router = APIRouter(prefix="/internal")

        @router.get("/invoices/{invoice_id}")
        async def invoice(
            invoice_id: str, caller: CurrentInternalCaller, request: Request
        ) -> dict[str, Any]:
            self.seen(request)
            if self.unavailable_for > 0:
                self.unavailable_for -= 1
                return Response(status_code=503, headers={"Retry-After": self.retry_after})  # type: ignore[return-value]
            if invoice_id != "inv-1":
                raise NotFoundError(f"No invoice {invoice_id!r}", code="no_such_invoice")
            return {"data": {"type": "invoices", "id": invoice_id, "meta": {"by": caller.service}}}

        @router.post("/invoices", status_code=201)
        async def create(request: Request) -> dict[str, Any]:
            self.seen(request)
            if self.unavailable_for > 0:
                self.unavailable_for -= 1
                return Response(status_code=503)  # type: ignore[return-value]
            return {"data": {"type": "invoices", "id": "inv-2", "attributes": await request.json()}}

        @router.get("/broken")
        async def broken(request: Request) -> None:
            self.seen(request)
            raise RuntimeError("the callee's own bug")

        self.app.include_router(router)

    def seen(self, request: Request) -> None:
        self.tokens.append(request.headers["authorization"].removeprefix("Bearer "))
        self.request_ids.append(request.headers.get("x-request-id"))
        self.content_types.append(request.headers.get("content-type"))


@pytest.fixture
def callee() -> Callee:
    return Callee()


@pytest.fixture
async def client(callee: Callee) -> AsyncIterator[InternalClient]:
    async with InternalClient(
        service_settings(CALLER),
        callee=CALLEE,
        base_url="http://billing.internal",
        client_settings=FAST,
        transport=httpx.ASGITransport(app=callee.app),
    ) as opened:
        yield opened


@pytest.mark.anyio
async def test_a_call_carries_an_internal_token_for_the_callee(
    client: InternalClient, callee: Callee
) -> None:
    response = await client.get("/internal/invoices/inv-1")
    assert response.json()["data"]["meta"] == {"by": CALLER}
    claims = jwt.decode(callee.tokens[0], INTERNAL_SECRET, algorithms=["HS256"], audience=CALLEE)
    assert (claims["iss"], claims["token_use"]) == (CALLER, "internal")


def billing_client(callee: Callee, issuer: CoreSettings, tokens: InternalTokens) -> InternalClient:
    return InternalClient(
        issuer,
        callee=CALLEE,
        base_url="http://billing.internal",
        client_settings=FAST,
        tokens=tokens,
        transport=httpx.ASGITransport(app=callee.app),
    )


@pytest.mark.anyio
async def test_the_token_is_reused_until_it_nears_its_expiry(callee: Callee) -> None:
    now = [time.time()]
    issuer = service_settings(CALLER)
    async with billing_client(
        callee, issuer, InternalTokens(issuer, clock=lambda: now[0])
    ) as client:
        await client.get("/internal/invoices/inv-1")
        await client.get("/internal/invoices/inv-1")
        now[0] += 300 - 29  # under 30 s of its 300 left
        await client.get("/internal/invoices/inv-1")
    first, second, third = callee.tokens
    assert first == second != third


@pytest.mark.anyio
async def test_an_expired_cached_token_is_renewed(callee: Callee) -> None:
    issuer = service_settings(CALLER, internal_token_ttl_seconds=1)
    async with billing_client(callee, issuer, InternalTokens(issuer)) as client:
        await client.get("/internal/invoices/inv-1")
        time.sleep(1.2)  # the cached token expires; the callee allows no leeway
        await client.get("/internal/invoices/inv-1")
    first, second = callee.tokens
    assert first != second


@pytest.mark.anyio
async def test_a_token_the_callee_finds_expired_is_renewed_and_the_call_made_again(
    callee: Callee,
) -> None:
    """The cache's clock lags the callee's: the callee's 401 makes the client forget the token
    and send the call again, once, with a new one: a POST too, as the callee did nothing."""
    issuer = service_settings(CALLER, internal_token_ttl_seconds=1)
    lagging = time.time()
    async with billing_client(
        callee, issuer, InternalTokens(issuer, clock=lambda: lagging)
    ) as client:
        await client.get("/internal/invoices/inv-1")
        time.sleep(1.2)
        response = await client.post("/internal/invoices", json={"amount": 3})
    assert response.status_code == 201
    assert len(callee.tokens) == 2  # the expired token never reached the route
    claims = jwt.decode(callee.tokens[1], INTERNAL_SECRET, algorithms=["HS256"], audience=CALLEE)
    assert claims["exp"] > time.time()


@pytest.mark.anyio
async def test_a_body_is_sent_as_a_jsonapi_document(client: InternalClient, callee: Callee) -> None:
    document = {"data": {"type": "invoices", "attributes": {"amount": 3}}}
    response = await client.post("/internal/invoices", json=document)
    assert response.status_code == 201
    assert callee.content_types == ["application/vnd.api+json"]


@pytest.mark.anyio
async def test_the_callees_404_is_the_core_error_with_its_code_and_detail(
    client: InternalClient,
) -> None:
    with pytest.raises(NotFoundError) as raised:
        await client.get("/internal/invoices/inv-9")
    assert raised.value.status == 404
    assert raised.value.code == "no_such_invoice"
    assert raised.value.detail == "No invoice 'inv-9'"


@pytest.mark.anyio
async def test_a_get_is_retried_after_a_503_and_honours_retry_after(
    client: InternalClient, callee: Callee
) -> None:
    callee.unavailable_for = 2
    response = await client.get("/internal/invoices/inv-1")
    assert response.status_code == 200
    assert len(callee.tokens) == 3


@pytest.mark.anyio
async def test_a_post_is_not_retried(client: InternalClient, callee: Callee) -> None:
    callee.unavailable_for = 1
    with pytest.raises(ServiceUnavailableError) as raised:
        await client.post("/internal/invoices", json={"amount": 3})
    assert len(callee.tokens) == 1
    assert raised.value.headers["Retry-After"] == "5"


@pytest.mark.anyio
async def test_a_retry_after_longer_than_the_call_may_last_is_passed_on(
    client: InternalClient, callee: Callee
) -> None:
    callee.unavailable_for, callee.retry_after = 5, "60"
    with pytest.raises(ServiceUnavailableError) as raised:
        await client.get("/internal/invoices/inv-1")
    assert len(callee.tokens) == 1  # no waiting 60 s within a 2 s call
    assert raised.value.headers["Retry-After"] == "60"


@pytest.mark.anyio
async def test_a_callees_500_is_a_502_for_the_caller(client: InternalClient) -> None:
    with pytest.raises(SmplkitError) as raised:
        await client.get("/internal/broken")
    assert (raised.value.status, raised.value.code) == (502, "bad_gateway")


@pytest.mark.anyio
async def test_a_refused_token_is_a_502_not_the_callers_401() -> None:
    callee = Callee()
    stranger = service_settings(CALLER, internal_token_secret=SecretStr("another-secret-" * 3))
    async with InternalClient(
        stranger,
        callee=CALLEE,
        base_url="http://billing.internal",
        transport=httpx.ASGITransport(app=callee.app),
    ) as client:
        with pytest.raises(SmplkitError) as raised:
            await client.get("/internal/invoices/inv-1")
    assert raised.value.status == 502


def local_client(port: int, client_settings: ClientSettings) -> InternalClient:
    """A client of whatever listens (or not) on a loopback port."""
    return InternalClient(
        service_settings(CALLER),
        callee=CALLEE,
        base_url=f"http://127.0.0.1:{port}",
        client_settings=client_settings,
    )


@pytest.fixture
def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A port that accepts connections and never answers."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(16)
        yield sock.getsockname()[1]


@pytest.mark.anyio
async def test_a_callee_that_is_down_is_a_503_with_retry_after_after_the_retries(
    closed_port: int, caplog: pytest.LogCaptureFixture
) -> None:
    async with local_client(closed_port, FAST) as client:
        with pytest.raises(ServiceUnavailableError) as raised:
            await client.get("/internal/invoices/inv-1")
    assert raised.value.headers == {"Retry-After": "5"}
    (line,) = [record for record in caplog.records if record.name == "smplcore.client"]
    assert (line.levelname, line.attempts, line.status, line.failure) == (  # type: ignore[attr-defined]
        "WARNING",
        3,
        None,
        "ConnectError",
    )


@pytest.mark.anyio
async def test_a_callee_that_never_answers_is_a_503_within_the_total_timeout(
    silent_port: int,
) -> None:
    limits = ClientSettings(connect_timeout=0.5, read_timeout=5, total_timeout=1)
    started = time.monotonic()
    async with local_client(silent_port, limits) as client:
        with pytest.raises(ServiceUnavailableError):
            await client.get("/internal/invoices/inv-1")
    # bounded by total_timeout (1 s), not by the 5 s read timeout
    assert time.monotonic() - started < 4


@pytest.mark.anyio
async def test_the_request_id_and_the_call_line_follow_the_request(
    callee: Callee, capsys: pytest.CaptureFixture[str]
) -> None:
    caller = FastAPI()
    install_core(caller, service_settings(CALLER), access=AccessPolicy(public_paths={"/relay"}))
    billing = InternalClient(
        service_settings(CALLER),
        callee=CALLEE,
        base_url="http://billing.internal",
        transport=httpx.ASGITransport(app=callee.app),
    )

    @caller.get("/relay")
    async def relay() -> dict[str, Any]:
        response = await billing.get("/internal/invoices/inv-1")
        return {"meta": response.json()["data"]["meta"]}

    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=caller), base_url="http://orders.internal"
    ) as http:
        response = await http.get("/relay", headers={"X-Request-ID": "req-42"})
    await billing.aclose()
    assert response.status_code == 200
    assert callee.request_ids == ["req-42"]
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    call = next(line for line in lines if line["event"] == "call")
    assert call["request_id"] == "req-42"
    assert {key: call[key] for key in ("callee", "method", "path", "status", "attempts")} == {
        "callee": CALLEE,
        "method": "GET",
        "path": "/internal/invoices/inv-1",
        "status": 200,
        "attempts": 1,
    }
    assert isinstance(call["duration_ms"], float)
    requests = {line["path"]: line["request_id"] for line in lines if line["event"] == "request"}
    assert requests == {"/relay": "req-42", "/internal/invoices/inv-1": "req-42"}


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"
