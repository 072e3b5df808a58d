"""Traces and metrics of a core app: spans named by route template, the caller's trace followed,
trace ids in every log line, EMF metrics on the request line; and nothing of it while off."""

from __future__ import annotations

import json
import logging
import re
import subprocess
import sys
from typing import Any

import pytest
from fastapi import APIRouter, FastAPI
from fastapi.testclient import TestClient
from pydantic import SecretStr
from sqlalchemy import create_engine, text
from sqlalchemy.exc import OperationalError

from smplcore import (
    AccessPolicy,
    AuthSettings,
    CoreSettings,
    NotFoundError,
    TelemetrySettings,
    install_core,
    span,
    start_telemetry,
    trace_headers,
    trace_queries,
)
from smplcore.testing import OtlpReceiver, ReceivedSpan

ACCOUNT_KEY = "account-key-of-the-telemetry-tests-" + "0123456789abcdef" * 2
INTERNAL_SECRET = "internal-secret-of-the-telemetry-tests-" + "0123456789abcdef" * 2
CALLER_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
CALLER_SPAN = "00f067aa0ba902b7"


def settings_with(telemetry: TelemetrySettings) -> CoreSettings:
    auth = AuthSettings(
        account_token_key=SecretStr(ACCOUNT_KEY), internal_token_secret=SecretStr(INTERNAL_SECRET)
    )
    return CoreSettings(service_name="orders", auth=auth, telemetry=telemetry)


def traced_app(telemetry: TelemetrySettings) -> FastAPI:
    app = FastAPI()
    install_core(
        app,
        settings_with(telemetry),
        access=AccessPolicy(public_paths={"/v1/orders/o-1", "/v1/orders/o-9"}),
    )
    orders = APIRouter(prefix="/orders")

    @orders.get("/{order_id}")
    async def order(order_id: str) -> dict[str, Any]:
        if order_id != "o-1":
            raise NotFoundError("No such order")
        with span("price the order") as priced:
            priced.set_attribute("order.id", order_id)
        return {"data": {"type": "orders", "id": order_id}}

    v1 = APIRouter(prefix="/v1")
    v1.include_router(orders)
    app.include_router(v1)
    return app


def traced_client(receiver: OtlpReceiver) -> TestClient:
    telemetry = TelemetrySettings(otlp_endpoint=receiver.endpoint, trace_sample_ratio=1)
    return TestClient(traced_app(telemetry))


def request_lines(capsys: pytest.CaptureFixture[str]) -> list[dict[str, Any]]:
    lines = [json.loads(text) for text in capsys.readouterr().out.splitlines()]
    return [line for line in lines if line["event"] == "request"]


def named(spans: list[ReceivedSpan]) -> dict[str, ReceivedSpan]:
    return {span.name: span for span in spans}


def test_a_request_is_a_server_span_named_by_its_route_template(
    receiver: OtlpReceiver, capsys: pytest.CaptureFixture[str]
) -> None:
    traceparent = f"00-{CALLER_TRACE}-{CALLER_SPAN}-01"
    response = traced_client(receiver).get("/v1/orders/o-1", headers={"traceparent": traceparent})
    assert response.status_code == 200
    spans = named(receiver.wait_for(lambda spans: len(spans) == 2))
    assert set(spans) == {"GET /v1/orders/{order_id}", "price the order"}
    server = spans["GET /v1/orders/{order_id}"]
    assert (server.service, server.kind) == ("orders", "SERVER")
    assert server.attributes["http.route"] == "/v1/orders/{order_id}"
    assert server.attributes["http.response.status_code"] == 200
    assert (server.trace_id, server.parent_span_id) == (CALLER_TRACE, CALLER_SPAN)
    child = spans["price the order"]
    assert (child.trace_id, child.parent_span_id) == (CALLER_TRACE, server.span_id)
    assert child.attributes == {"order.id": "o-1"}
    (line,) = request_lines(capsys)
    assert (line["trace_id"], line["span_id"]) == (CALLER_TRACE, server.span_id)


def test_a_request_without_a_route_is_named_by_its_method_alone(receiver: OtlpReceiver) -> None:
    client = traced_client(receiver)
    assert client.get("/v1/orders/o-9").status_code == 404
    assert client.get("/v1/nothing-here").status_code == 401
    spans = receiver.wait_for(lambda spans: len(spans) == 2)
    assert sorted(span.name for span in spans) == ["GET", "GET /v1/orders/{order_id}"]
    assert not any(span.failed for span in spans)


def test_trace_headers_carry_the_current_span(receiver: OtlpReceiver) -> None:
    traced_client(receiver)
    with span("send a message", kind="producer") as sending:
        sending.set_attribute("messaging.system", "aws_sqs")
        headers = trace_headers()
    with span("receive it", kind="consumer", carrier=headers):
        pass
    spans = named(receiver.wait_for(lambda spans: len(spans) == 2))
    sent, received = spans["send a message"], spans["receive it"]
    assert headers["traceparent"].startswith(f"00-{sent.trace_id}-{sent.span_id}-")
    assert (received.trace_id, received.parent_span_id) == (sent.trace_id, sent.span_id)
    assert (sent.kind, received.kind) == ("PRODUCER", "CONSUMER")


def test_a_request_whose_trace_is_not_sampled_records_nothing_but_passes_its_ids_on(
    receiver: OtlpReceiver, capsys: pytest.CaptureFixture[str]
) -> None:
    """Its lines and its calls still share one trace id, so that its callee follows the
    decision and a search by trace id finds every line of it."""
    telemetry = TelemetrySettings(otlp_endpoint=receiver.endpoint, trace_sample_ratio=0)
    app = FastAPI()
    install_core(app, settings_with(telemetry), access=AccessPolicy(public_paths={"/call"}))
    sent: list[dict[str, str]] = []

    @app.get("/call")
    async def call() -> dict[str, Any]:
        with span("prepare the call"):
            logging.getLogger("orders").info("calling")
            sent.append(trace_headers())
        return {"meta": {}}

    client = TestClient(app)
    assert client.get("/call").status_code == 200
    caller = f"00-{CALLER_TRACE}-{CALLER_SPAN}-00"
    followed = client.get("/call", headers={"traceparent": caller, "tracestate": "vendor=on"})
    assert followed.status_code == 200
    start_telemetry(TelemetrySettings(), service_name="orders")  # off: every span is sent
    assert receiver.spans() == []
    lines = [json.loads(text) for text in capsys.readouterr().out.splitlines()]
    lines = [line for line in lines if line["logger"] in {"orders", "smplcore.request"}]
    own, theirs = lines[:2], lines[2:4]
    assert [line["event"] for line in lines] == ["calling", "request"] * 2
    for pair, headers in ((own, sent[0]), (theirs, sent[1])):
        trace_id, span_id = pair[0]["trace_id"], pair[0]["span_id"]
        assert re.fullmatch("[0-9a-f]{32}", trace_id)
        assert re.fullmatch("[0-9a-f]{16}", span_id)
        assert (pair[1]["trace_id"], pair[1]["span_id"]) == (trace_id, span_id)
        assert headers["traceparent"] == f"00-{trace_id}-{span_id}-00"
    assert own[0]["trace_id"] != CALLER_TRACE
    assert theirs[0]["trace_id"] == CALLER_TRACE
    assert theirs[0]["span_id"] != CALLER_SPAN
    assert "tracestate" not in sent[0]
    assert sent[1]["tracestate"] == "vendor=on"


def test_metrics_are_embedded_in_the_request_line(capsys: pytest.CaptureFixture[str]) -> None:
    client = TestClient(traced_app(TelemetrySettings(metrics=True)))
    client.get("/v1/orders/o-1")
    client.get("/v1/orders/o-9")
    client.get("/v1/nothing-here")
    requests = request_lines(capsys)
    assert [(line["route"], line["status"], line["error"]) for line in requests] == [
        ("/v1/orders/{order_id}", 200, 0),
        ("/v1/orders/{order_id}", 404, 0),
        ("(unmatched)", 401, 0),
    ]
    (directive,) = requests[0]["_aws"]["CloudWatchMetrics"]
    assert directive["Dimensions"] == [["service", "method", "route"], ["service"]]
    assert {metric["Name"] for metric in directive["Metrics"]} == {"duration_ms", "error"}
    assert isinstance(requests[0]["_aws"]["Timestamp"], int)
    assert "trace_id" not in requests[0]


def test_with_telemetry_off_nothing_is_added_or_imported(
    capsys: pytest.CaptureFixture[str],
) -> None:
    client = TestClient(traced_app(TelemetrySettings()))
    client.get("/v1/orders/o-1")
    (line,) = request_lines(capsys)
    assert set(line) == {
        "timestamp",
        "level",
        "logger",
        "service",
        "event",
        "request_id",
        "method",
        "path",
        "status",
        "duration_ms",
    }
    with span("anything") as nothing:
        nothing.set_attribute("ignored", True)
    assert trace_headers() == {}


def test_the_sdk_is_imported_only_when_tracing_is_on() -> None:
    """FastAPI 0.165 imports OpenTelemetry's API itself; the SDK and the exporter stay out, and
    so does httpx until a client is made (each weighs on a service's import time)."""
    script = (
        "import sys; from fastapi import FastAPI; import smplcore.client; "
        "from smplcore import install_core, AccessPolicy, CoreSettings, AuthSettings; "
        f"auth = AuthSettings(account_token_key={ACCOUNT_KEY!r}, "
        f"internal_token_secret={INTERNAL_SECRET!r}); "
        "install_core(FastAPI(), CoreSettings(service_name='orders', auth=auth), "
        "access=AccessPolicy()); "
        "print(sorted(m for m in sys.modules if m.startswith(('opentelemetry.sdk', "
        "'opentelemetry.exporter', 'httpx'))))"
    )
    output = subprocess.run(  # noqa: S603 - this interpreter
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    ).stdout
    assert output.strip() == "[]"


def test_each_statement_of_a_recorded_trace_is_a_child_span(traced: OtlpReceiver) -> None:
    engine = create_engine("sqlite://")
    trace_queries(engine)
    with engine.connect() as connection:
        connection.execute(text("SELECT 1"))  # outside any span: no trace to join
        with span("GET /v1/orders", kind="server"):
            connection.execute(text("CREATE TABLE orders (id TEXT)"))
            connection.execute(text("INSERT INTO orders VALUES (:id)"), {"id": "o-1"})
            with pytest.raises(OperationalError):
                connection.execute(text("SELECT * FROM nothing_here"))
    start_telemetry(TelemetrySettings(), service_name="orders")  # off: every span is sent
    spans = traced.spans()
    assert sorted(span.name for span in spans) == ["CREATE", "GET /v1/orders", "INSERT", "SELECT"]
    request = next(span for span in spans if span.kind == "SERVER")
    queries = named([span for span in spans if span is not request])
    for query in queries.values():
        assert (query.kind, query.trace_id) == ("CLIENT", request.trace_id)
        assert query.parent_span_id == request.span_id
        assert query.attributes["db.system.name"] == "sqlite"
    assert queries["INSERT"].attributes["db.query.text"] == "INSERT INTO orders VALUES (?)"
    assert queries["INSERT"].attributes["db.operation.name"] == "INSERT"
    assert not queries["INSERT"].failed
    assert queries["SELECT"].failed
    assert queries["SELECT"].attributes["error.type"] == "OperationalError"


def test_statements_cost_no_span_while_tracing_is_off_or_the_trace_is_not_sampled(
    receiver: OtlpReceiver,
) -> None:
    engine = create_engine("sqlite://")
    trace_queries(engine)  # tracing is off: no listener
    assert not engine.dispatch.before_cursor_execute
    sampled_out = TelemetrySettings(otlp_endpoint=receiver.endpoint, trace_sample_ratio=0)
    start_telemetry(sampled_out, service_name="orders")
    trace_queries(engine)
    with engine.connect() as connection, span("GET /v1/orders", kind="server"):
        connection.execute(text("SELECT 1"))
    start_telemetry(TelemetrySettings(), service_name="orders")
    assert receiver.spans() == []


def test_a_process_without_core_settings_names_its_service() -> None:
    with pytest.raises(TypeError, match="needs service_name="):
        start_telemetry(TelemetrySettings())  # type: ignore[call-overload]
