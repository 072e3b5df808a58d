"""The request-context middleware: request ids, content negotiation, request log lines."""

import asyncio
import io
import json
import logging
import re
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
import structlog
from fastapi import FastAPI
from fastapi.testclient import TestClient
from starlette.types import Message, Receive, Scope, Send

from smplcore import JSONAPI_MEDIA_TYPE, AccessPolicy, RequestContextMiddleware, current_request_id
from smplcore._context import AccountContext, RequestContext, request_context
from smplcore.logging import JsonFormatter, configure_logging, get_logger

Headers = Callable[..., dict[str, str]]


def log_lines(capsys: pytest.CaptureFixture[str]) -> list[dict[str, Any]]:
    return [json.loads(line) for line in capsys.readouterr().out.splitlines() if line]


# ---------------------------------------------------------------------------- request ids


@pytest.mark.parametrize("value", ["abc-123", "a.b_c-D", "x" * 128, "0"])
def test_sane_request_id_is_echoed(client: TestClient, value: str) -> None:
    response = client.get("/plain", headers={"X-Request-ID": value})
    assert response.headers["x-request-id"] == value


@pytest.mark.parametrize(
    "value",
    ["x" * 129, "has space", 'quote"d', "{brace}", "tab\there", "semi;colon", "a/b", ""],
)
def test_insane_request_id_is_replaced(client: TestClient, value: str) -> None:
    response = client.get("/plain", headers={"X-Request-ID": value})
    generated = response.headers["x-request-id"]
    assert generated != value
    assert len(generated) == 32
    assert generated.isalnum()


@pytest.mark.parametrize("raw", [b"evil\x00\r\nid", b"\xfcn\xef", b"\x1b[31m", b"a\x7f"])
def test_control_characters_in_request_id_are_replaced(raw: bytes) -> None:
    seen: dict[str, str | None] = {}

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        seen["id"] = current_request_id()
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    middleware = RequestContextMiddleware(app)
    sent: list[Message] = []

    async def receive() -> Message:
        return {"type": "http.request", "body": b""}

    async def send(message: Message) -> None:
        sent.append(message)

    scope: Scope = {
        "type": "http",
        "method": "GET",
        "path": "/",
        "headers": [(b"x-request-id", raw)],
    }
    asyncio.run(middleware(scope, receive, send))
    headers = dict(sent[0]["headers"])
    assert headers[b"x-request-id"] != raw
    assert headers[b"x-request-id"].decode() == seen["id"]


def test_generated_request_id_when_absent(client: TestClient) -> None:
    first = client.get("/plain").headers["x-request-id"]
    second = client.get("/plain").headers["x-request-id"]
    assert first != second


@pytest.mark.parametrize(
    ("method", "path", "status", "body"),
    [
        ("GET", "/nowhere", 404, None),
        ("DELETE", "/plain", 405, None),
        ("GET", "/search?limit=0", 400, None),
        ("POST", "/v1/widgets", 422, {"data": {"type": "widgets", "attributes": {}}}),
        ("GET", "/boom", 500, None),
        ("GET", "/unavailable", 503, None),
        ("GET", "/v1/widgets", 401, None),
    ],
)
def test_request_id_on_error_responses(
    client: TestClient,
    auth_headers: Headers,
    method: str,
    path: str,
    status: int,
    body: Any,
) -> None:
    headers = {"X-Request-ID": "err-trace-1"}
    if path == "/v1/widgets" and method == "POST":
        headers.update(auth_headers())
    response = client.request(method, path, json=body, headers=headers)
    assert response.status_code == status
    assert response.headers["x-request-id"] == "err-trace-1"
    assert response.headers["content-type"] == JSONAPI_MEDIA_TYPE


def test_request_id_is_not_duplicated_when_the_app_sets_one() -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        headers = [(b"x-request-id", b"from-app"), (b"content-type", b"text/plain")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": b"hi"})

    client = TestClient(RequestContextMiddleware(app))  # no lifespan: a bare ASGI app
    response = client.get("/", headers={"X-Request-ID": "mine"})
    assert response.headers.get_list("x-request-id") == ["mine"]
    assert response.headers["content-type"] == "text/plain"  # only JSON is rewritten


# ---------------------------------------------------------------------------- negotiation


@pytest.mark.parametrize(
    "content_type",
    [
        "application/vnd.api+json; charset=utf-8",
        "application/vnd.api+json;ext=bulk",
        "Application/Vnd.Api+Json ; version=1",
    ],
)
def test_jsonapi_content_type_with_parameters_is_415(
    client: TestClient, auth_headers: Headers, content_type: str
) -> None:
    response = client.post(
        "/v1/widgets",
        content=b'{"data": {"type": "widgets", "attributes": {"name": "a"}}}',
        headers={"Content-Type": content_type, **auth_headers()},
    )
    assert response.status_code == 415
    assert response.headers["content-type"] == JSONAPI_MEDIA_TYPE
    assert response.headers["x-request-id"]
    assert response.json()["errors"][0]["status"] == "415"
    assert response.json()["errors"][0]["source"] == {"header": "Content-Type"}


@pytest.mark.parametrize(
    "accept",
    [
        "application/vnd.api+json; charset=utf-8",
        "application/vnd.api+json;ext=bulk, application/vnd.api+json;profile=x",
        "text/html, application/vnd.api+json; version=1",
    ],
)
def test_accept_with_only_parameterized_jsonapi_is_406(client: TestClient, accept: str) -> None:
    response = client.get("/plain", headers={"Accept": accept})
    assert response.status_code == 406
    assert response.headers["content-type"] == JSONAPI_MEDIA_TYPE
    assert response.json()["errors"][0]["code"] == "not_acceptable"


@pytest.mark.parametrize(
    "accept",
    [
        "application/vnd.api+json",
        "application/vnd.api+json; charset=utf-8, application/vnd.api+json",
        "application/vnd.api+json;q=0.9",
        "*/*",
        "application/json",
        "text/html, */*;q=0.1",
    ],
)
def test_acceptable_accept_headers(client: TestClient, accept: str) -> None:
    response = client.get("/plain", headers={"Accept": accept})
    assert response.status_code == 200
    assert response.headers["content-type"] == JSONAPI_MEDIA_TYPE


@pytest.mark.parametrize("content_type", [JSONAPI_MEDIA_TYPE, "application/json"])
def test_acceptable_content_types(
    client: TestClient, auth_headers: Headers, content_type: str
) -> None:
    response = client.post(
        "/v1/widgets",
        content=b'{"data": {"type": "widgets", "attributes": {"name": "a"}}}',
        headers={"Content-Type": content_type, **auth_headers()},
    )
    assert response.status_code == 201, response.text
    assert response.headers["content-type"] == JSONAPI_MEDIA_TYPE


@pytest.mark.parametrize(
    ("content_type", "named"),
    [
        ("application/x-www-form-urlencoded", "application/x-www-form-urlencoded"),  # curl -d
        ("text/plain; charset=utf-8", "text/plain"),
        (None, "no Content-Type"),
    ],
)
def test_a_document_sent_as_another_media_type_is_415_naming_the_one_to_use(
    client: TestClient, auth_headers: Headers, content_type: str | None, named: str
) -> None:
    headers = auth_headers() | ({"Content-Type": content_type} if content_type else {})
    response = client.post(
        "/v1/widgets",
        content=b'{"data": {"type": "widgets", "attributes": {"name": "a"}}}',
        headers=headers,
    )
    assert response.status_code == 415, response.text
    [error] = response.json()["errors"]
    assert error["code"] == "unsupported_media_type"
    assert error["source"] == {"header": "Content-Type"}
    assert named in error["detail"]
    assert f"Content-Type: {JSONAPI_MEDIA_TYPE}" in error["detail"]


def test_a_json_body_that_is_no_document_is_still_422(
    client: TestClient, auth_headers: Headers
) -> None:
    response = client.post(
        "/v1/widgets",
        content=b'"a string"',
        headers={"Content-Type": JSONAPI_MEDIA_TYPE, **auth_headers()},
    )
    assert response.status_code == 422, response.text


def test_openapi_document_stays_plain_json(client: TestClient) -> None:
    response = client.get("/openapi.json")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.headers["x-request-id"]


def test_websocket_and_lifespan_scopes_pass_through() -> None:
    calls: list[str] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        calls.append(scope["type"])

    middleware = RequestContextMiddleware(app)

    async def nothing() -> Message:
        return {}

    async def ignore(message: Message) -> None:
        return None

    asyncio.run(middleware({"type": "lifespan"}, nothing, ignore))
    assert calls == ["lifespan"]


def test_exception_after_the_response_started_is_reraised(
    capsys: pytest.CaptureFixture[str],
) -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        raise RuntimeError("late")

    configure_logging(service_name="late-service")
    middleware = RequestContextMiddleware(app)
    sent: list[Message] = []

    async def receive() -> Message:
        return {"type": "http.request", "body": b""}

    async def send(message: Message) -> None:
        sent.append(message)

    scope: Scope = {"type": "http", "method": "GET", "path": "/", "headers": []}
    with pytest.raises(RuntimeError, match="late"):
        asyncio.run(middleware(scope, receive, send))
    assert len(sent) == 1
    lines = log_lines(capsys)
    assert any("exception" in line for line in lines)
    assert [line["status"] for line in lines if line["event"] == "request"] == [200]


# ---------------------------------------------------------------------------- logging


def test_one_request_line_per_request(
    client: TestClient, auth_headers: Headers, capsys: pytest.CaptureFixture[str]
) -> None:
    capsys.readouterr()
    client.get("/v1/widgets?page[size]=5", headers={"X-Request-ID": "line-1", **auth_headers()})
    lines = [line for line in log_lines(capsys) if line["event"] == "request"]
    assert len(lines) == 1
    line = lines[0]
    assert line["request_id"] == "line-1"
    assert line["account_id"] == "acct-1"
    assert line["method"] == "GET"
    assert line["path"] == "/v1/widgets"
    assert line["status"] == 200
    assert isinstance(line["duration_ms"], float)
    assert line["service"] == "widget-service"
    assert line["level"] == "info"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", line["timestamp"])


def test_request_line_without_account(
    client: TestClient, capsys: pytest.CaptureFixture[str]
) -> None:
    capsys.readouterr()
    client.get("/plain")
    (line,) = [line for line in log_lines(capsys) if line["event"] == "request"]
    assert "account_id" not in line


def test_every_log_line_in_a_request_carries_its_id(
    settings: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    from smplcore import install_core

    app = FastAPI()
    install_core(app, settings, access=AccessPolicy(public_paths={"/work"}))
    stdlib_logger = logging.getLogger("service.widgets")
    with pytest.warns(DeprecationWarning, match="structlog"):
        struct_logger = get_logger("service.struct")
    named_logger = structlog.get_logger("service.named")

    @app.get("/work")
    async def work() -> dict[str, Any]:
        stdlib_logger.info("stdlib line", extra={"widget": 7})
        struct_logger.info("structlog line", widget=8)
        structlog.get_logger().warning("plain structlog")
        named_logger.error("named structlog")
        return {"meta": {"request_id": current_request_id()}}

    with TestClient(app) as client:
        capsys.readouterr()
        response = client.get("/work", headers={"X-Request-ID": "ctx-42"})
    assert response.json() == {"meta": {"request_id": "ctx-42"}}
    lines = log_lines(capsys)
    by_event = {line["event"]: line for line in lines}
    assert by_event["stdlib line"]["request_id"] == "ctx-42"
    assert by_event["stdlib line"]["widget"] == 7
    assert by_event["stdlib line"]["logger"] == "service.widgets"
    assert by_event["structlog line"]["request_id"] == "ctx-42"
    assert by_event["structlog line"]["widget"] == 8
    assert by_event["structlog line"]["logger"] == "service.struct"
    assert by_event["plain structlog"]["level"] == "warning"
    assert by_event["plain structlog"]["request_id"] == "ctx-42"
    assert by_event["named structlog"]["logger"] == "service.named"
    assert by_event["named structlog"]["request_id"] == "ctx-42"
    assert by_event["request"]["request_id"] == "ctx-42"
    assert current_request_id() is None  # reset after the request


def test_configure_logging_is_idempotent_and_honours_the_level() -> None:
    stream = io.StringIO()
    configure_logging("WARNING", service_name="quiet", stream=stream)
    configure_logging("WARNING", service_name="quiet", stream=stream)
    ours = [h for h in logging.getLogger().handlers if isinstance(h.formatter, JsonFormatter)]
    assert len(ours) == 1
    logging.getLogger("x").info("hidden")
    logging.getLogger("x").warning("shown")
    try:
        raise ValueError("boom")
    except ValueError:
        logging.getLogger("x").exception("failed")
    logging.getLogger("x").warning("with stack", stack_info=True)
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert [line["event"] for line in lines] == ["shown", "failed", "with stack"]
    assert all(line["service"] == "quiet" for line in lines)
    assert "ValueError: boom" in lines[1]["exception"]
    assert "stack" in lines[2]
    assert "request_id" not in lines[0]
    assert logging.getLogger("uvicorn.access").disabled
    with pytest.raises(ValueError, match="Unknown level"):
        configure_logging("LOUD", service_name="x")
    configure_logging("INFO", service_name="widget-service")


def test_request_lines_follow_the_level(capsys: pytest.CaptureFixture[str]) -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        status = 500 if scope["path"] == "/fail" else 200
        await send({"type": "http.response.start", "status": status, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    configure_logging("ERROR", service_name="quiet")
    try:
        client = TestClient(RequestContextMiddleware(app))  # no lifespan: a bare ASGI app
        capsys.readouterr()
        client.get("/ok")
        client.get("/fail")
        lines = [line for line in log_lines(capsys) if line["event"] == "request"]
        assert [(line["path"], line["level"]) for line in lines] == [("/fail", "error")]
    finally:
        configure_logging("INFO", service_name="widget-service")


def test_uvicorns_colored_copy_of_its_message_is_left_out() -> None:
    stream = io.StringIO()
    configure_logging("INFO", service_name="plain", stream=stream)
    try:
        message = "Uvicorn running on %s"
        colored = "Uvicorn running on \x1b[1m%s\x1b[0m"
        logging.getLogger("uvicorn.error").info(
            message, "http://127.0.0.1:8000", extra={"color_message": colored}
        )
        line = json.loads(stream.getvalue())
        assert line["event"] == "Uvicorn running on http://127.0.0.1:8000"
        assert "color_message" not in line
        assert "\x1b" not in stream.getvalue()
    finally:
        configure_logging("INFO", service_name="widget-service")


def test_a_line_keeps_its_standard_members_and_renders_any_field() -> None:
    formatter = JsonFormatter("svc")
    when = datetime(2026, 1, 31, 12, 0, 5, 250000, tzinfo=UTC)
    fields = {"service": "spoofed", "account_id": "given", "at": when, "ratio": 0.5, "ok": True}
    line = json.loads(formatter.render(when.timestamp(), "WARNING", "svc.x", 'say "hi"', fields))
    assert line == {
        "timestamp": "2026-01-31T12:00:05.250Z",
        "level": "warning",
        "logger": "svc.x",
        "service": "svc",
        "event": 'say "hi"',
        "account_id": "given",  # no request runs: nothing of the request's to keep
        "at": str(when),
        "ratio": 0.5,
        "ok": True,
    }
    context = RequestContext("req-1")
    context.account = AccountContext(subject="u", account_id="acct-9", tier="team")
    token = request_context.set(context)
    try:
        line = json.loads(formatter.render(when.timestamp(), "INFO", "svc.x", "e", fields))
    finally:
        request_context.reset(token)
    assert (line["request_id"], line["account_id"], line["service"]) == ("req-1", "acct-9", "svc")
    assert list(line)[:7] == [
        "timestamp",
        "level",
        "logger",
        "service",
        "event",
        "request_id",
        "account_id",
    ]


def test_the_middleware_s_names_still_import_from_logging_with_a_warning() -> None:
    """Deprecated since 1.1.0, removed in 2.0 (core/CHANGELOG.md: To be removed in 2.0)."""
    from smplcore import middleware

    with pytest.warns(DeprecationWarning, match=r"import it from smplcore\.middleware"):
        from smplcore.logging import RequestContextMiddleware as DeprecatedMiddleware
    assert DeprecatedMiddleware is RequestContextMiddleware
    with pytest.warns(DeprecationWarning, match=r"import it from smplcore\.middleware"):
        from smplcore.logging import REQUEST_ID_HEADER
    assert REQUEST_ID_HEADER == middleware.REQUEST_ID_HEADER
