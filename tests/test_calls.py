"""One request followed across two services, on real sockets.

The generated service (the defaults, shared with the other tests of its group) runs twice, as its
container runs it: B as `python -m <package>`, and A with one extra router a team would write
(`relay.py` below: routes that call B through the generated `CalleesDep`). Both export spans to an
OTLP/HTTP receiver of the test that decodes OTLP's protobuf (smplcore.testing.otlp_receiver), and
write their JSON log lines to files the test reads. Two instances of one generated service show
all of it at the cost of one `copier copy` and one `uv sync`: the calls, tokens, traces and errors
are the same whichever service is called.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from harness.commands import tool_env
from harness.postgres import free_port
from harness.serve import json_log_lines, serving
from smplcore.testing import OtlpReceiver, ReceivedSpan, otlp_receiver
from tests.services import GeneratedService, ServiceCache

pytestmark = pytest.mark.xdist_group("defaults")  # the worker that has the defaults installed

CALL_TIMEOUT = 3.0
TOKEN_TTL = 2
RELAY = '''\
"""A's routes that call B: GET, POST, and a GET whose code handles B's 404 itself."""

from typing import Any

from fastapi import APIRouter, FastAPI
from {core} import NotFoundError

from {package}.app import create_app as create_service
from {package}.callees import CalleesDep

router = APIRouter(prefix="/v1/relay")


@router.get("/or-none/{{path:path}}")
async def get_or_none(path: str, callees: CalleesDep) -> dict[str, Any]:
    try:
        await callees["{callee}"].get(f"/{{path}}")
    except NotFoundError as error:
        return {{"meta": {{"found": False, "code": error.code}}}}
    return {{"meta": {{"found": True}}}}


@router.get("/{{path:path}}")
async def relay_get(path: str, callees: CalleesDep) -> dict[str, Any]:
    response = await callees["{callee}"].get(f"/{{path}}")
    return {{"meta": {{"status": response.status_code, "body": response.json()}}}}


@router.post("/{{path:path}}")
async def relay_post(path: str, callees: CalleesDep) -> dict[str, Any]:
    response = await callees["{callee}"].post(f"/{{path}}", json={{"data": {{"type": "notes"}}}})
    return {{"meta": {{"status": response.status_code}}}}


def create_app() -> FastAPI:
    app = create_service()
    app.include_router(router)
    return app
'''


@dataclass
class Running:
    url: str
    log: Path

    def lines(self) -> list[dict[str, Any]]:
        return json_log_lines(self.log)

    def of_request(self, request_id: str, *events: str) -> list[dict[str, Any]]:
        """The lines of a request, once it has written one of each of ``events`` (its request
        line comes after its response)."""
        deadline = time.monotonic() + 10
        while True:
            lines = [line for line in self.lines() if line.get("request_id") == request_id]
            if {line["event"] for line in lines} >= set(events):
                return lines
            assert time.monotonic() < deadline, (events, lines)
            time.sleep(0.05)


@dataclass
class Fleet:
    a: Running
    b: Running
    b_stop: Callable[[], None]
    receiver: OtlpReceiver
    headers: dict[str, str]

    def call(self, method: str, path: str) -> httpx.Response:
        return httpx.request(method, f"{self.a.url}{path}", headers=self.headers, timeout=30)


@pytest.fixture(scope="module")
def service(services: ServiceCache) -> GeneratedService:
    return services.get()


@pytest.fixture(scope="module")
def fleet(service: GeneratedService, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    """B, then A calling B, both traced (every trace recorded where it starts: A) with metrics."""
    folder = tmp_path_factory.mktemp("calls")
    package, core = service.package_name, service.answers["core_module"]
    name = service.answers["service_name"]
    (folder / "relay.py").write_text(RELAY.format(package=package, core=core, callee=name))
    with otlp_receiver() as receiver:
        common = {
            **service.env,
            "METRICS": "true",
            "OTEL_BSP_SCHEDULE_DELAY": "100",  # the SDK's batch delay (ms): spans come quickly
        }
        b_port, a_port = free_port(), free_port()
        b_env = {
            **common,
            "HTTP_PORT": str(b_port),
            "OTEL_EXPORTER_OTLP_ENDPOINT": f"{receiver.endpoint}/b",
            "TRACE_SAMPLE_RATIO": "0",  # B follows A's decision
        }
        a_env = {
            **common,
            "PYTHONPATH": str(folder),
            "OTEL_EXPORTER_OTLP_ENDPOINT": f"{receiver.endpoint}/a",
            "TRACE_SAMPLE_RATIO": "1",
            "CALLEE_URLS": json.dumps({name: f"http://127.0.0.1:{b_port}"}),
            "CALL_TIMEOUT": str(CALL_TIMEOUT),
            "INTERNAL_TOKEN_TTL_SECONDS": str(TOKEN_TTL),
        }
        a_command = ["uv", "run", "--locked", "uvicorn", "relay:create_app", "--factory"]
        a_command += ["--port", str(a_port), "--no-access-log"]
        b_url, a_url = f"http://127.0.0.1:{b_port}", f"http://127.0.0.1:{a_port}"
        b_log, a_log = folder / "b.log", folder / "a.log"
        b_command = ["uv", "run", "--locked", "python", "-m", package]
        with (
            serving(
                b_command, cwd=service.path, env=tool_env(b_env), base_url=b_url, log=b_log
            ) as b_process,
            serving(a_command, cwd=service.path, env=tool_env(a_env), base_url=a_url, log=a_log),
        ):
            token = service.account_token()

            def b_stop() -> None:
                """B gone for good: a terminated server answers while it shuts down."""
                b_process.terminate()
                b_process.wait(timeout=30)

            yield Fleet(
                Running(a_url, a_log),
                Running(b_url, b_log),
                b_stop,
                receiver,
                {"Authorization": f"Bearer {token}", "Accept": "application/vnd.api+json"},
            )


def by_event(lines: list[dict[str, Any]], event: str) -> list[dict[str, Any]]:
    return [line for line in lines if line["event"] == event]


def test_one_trace_id_in_both_services_log_lines_and_spans(fleet: Fleet) -> None:
    response = fleet.call("GET", "/v1/relay/livez")
    assert response.status_code == 200
    assert response.json()["meta"] == {"status": 200, "body": {"meta": {"status": "ok"}}}
    request_id = response.headers["X-Request-ID"]
    a_lines = fleet.a.of_request(request_id, "request", "call")
    b_lines = fleet.b.of_request(request_id, "request")  # B took A's request id
    trace_ids = {line.get("trace_id") for line in a_lines + b_lines}
    assert len(trace_ids) == 1, a_lines + b_lines
    (trace_id,) = trace_ids
    assert trace_id is not None

    def whole(spans: list[ReceivedSpan]) -> bool:
        return len([span for span in spans if span.trace_id == trace_id]) == 3

    spans = [span for span in fleet.receiver.wait_for(whole) if span.trace_id == trace_id]
    kinds = {(span.sender, span.kind): span for span in spans}
    assert set(kinds) == {("/a", "SERVER"), ("/a", "CLIENT"), ("/b", "SERVER")}
    a_server, a_call, b_server = kinds["/a", "SERVER"], kinds["/a", "CLIENT"], kinds["/b", "SERVER"]
    assert a_server.name == "GET /v1/relay/{path}"
    assert (a_call.parent_span_id, a_call.attributes["peer.service"]) == (
        a_server.span_id,
        fleet_callee(fleet),
    )
    assert (b_server.name, b_server.parent_span_id) == ("GET /livez", a_call.span_id)
    (b_request,) = by_event(b_lines, "request")
    assert b_request["span_id"] == b_server.span_id


def fleet_callee(fleet: Fleet) -> str:
    (call, *_) = by_event(fleet.a.lines(), "call")
    return str(call["callee"])


def test_the_callees_404_reaches_the_callers_code_as_a_core_error(fleet: Fleet) -> None:
    handled = fleet.call("GET", "/v1/relay/or-none/internal/nothing-here")
    assert handled.status_code == 200
    assert handled.json()["meta"] == {"found": False, "code": "not_found"}
    unhandled = fleet.call("GET", "/v1/relay/internal/nothing-here")
    assert unhandled.status_code == 404
    assert unhandled.json()["errors"][0]["code"] == "not_found"


def test_an_expired_cached_token_is_renewed(fleet: Fleet) -> None:
    """A's tokens live 2 s: reused within their life, renewed after it, and B takes each."""

    def issued() -> int:
        return len(by_event(fleet.a.lines(), "internal token issued"))

    fleet.call("GET", "/v1/relay/livez")
    before = issued()
    assert fleet.call("POST", "/v1/relay/internal/notes").status_code == 404  # B verified it
    assert issued() == before  # the cached token
    time.sleep(TOKEN_TTL + 0.5)
    assert fleet.call("POST", "/v1/relay/internal/notes").status_code == 404
    assert issued() == before + 1


def test_the_metrics_of_a_short_run_are_labelled_by_route_template(fleet: Fleet) -> None:
    """A's request and call lines, read back as CloudWatch reads embedded metrics."""
    for path in ("/v1/relay/livez", "/v1/relay/readyz", "/v1/relay/internal/a", "/livez"):
        fleet.call("GET", path)
    requests: Counter[tuple[str, str]] = Counter()
    errors: Counter[tuple[str, str]] = Counter()
    callees: Counter[str] = Counter()
    for line in fleet.a.lines():
        metrics = embedded_metrics(line)
        if metrics is None:
            continue
        labels, values = metrics
        if "route" in labels:
            requests[labels["method"], labels["route"]] += 1
            errors[labels["method"], labels["route"]] += int(values["error"])
        elif "callee" in labels:
            callees[labels["callee"]] += 1
    assert requests["GET", "/v1/relay/{path}"] >= 4
    assert requests["GET", "/livez"] >= 1
    assert not [
        route for _, route in requests if route.startswith("/v1/relay/") and "{" not in route
    ]
    assert sum(errors.values()) == 0
    assert callees[fleet_callee(fleet)] >= 4


def embedded_metrics(line: dict[str, Any]) -> tuple[dict[str, str], dict[str, float]] | None:
    """The dimensions and values of a line in CloudWatch's embedded metric format; checks that
    every member the directive names is on the line, with the type CloudWatch requires."""
    metadata = line.get("_aws")
    if metadata is None:
        return None
    assert isinstance(metadata["Timestamp"], int)
    (directive,) = metadata["CloudWatchMetrics"]
    assert directive["Namespace"] == "smplkit/services"
    names = {name for dimension_set in directive["Dimensions"] for name in dimension_set}
    labels = {name: line[name] for name in names}
    assert all(isinstance(value, str) for value in labels.values()), labels
    values = {metric["Name"]: line[metric["Name"]] for metric in directive["Metrics"]}
    assert all(isinstance(value, int | float) for value in values.values()), values
    return labels, values


def test_with_b_stopped_a_answers_503_within_its_timeout_and_retries_only_the_get(
    fleet: Fleet,
) -> None:
    fleet.b_stop()
    for method in ("GET", "POST"):
        started = time.monotonic()
        response = fleet.call(method, "/v1/relay/internal/notes")
        elapsed = time.monotonic() - started
        assert response.status_code == 503, response.text
        assert response.headers["Retry-After"] == "5"
        assert response.json()["errors"][0]["code"] == "service_unavailable"
        assert elapsed < CALL_TIMEOUT + 2, elapsed  # bounded by CALL_TIMEOUT, whatever B does
    *_, get_call, post_call = by_event(fleet.a.lines(), "call")
    assert (get_call["method"], get_call["attempts"], get_call["status"]) == ("GET", 3, None)
    assert (post_call["method"], post_call["attempts"], post_call["status"]) == ("POST", 1, None)
    assert get_call["level"] == post_call["level"] == "warning"
