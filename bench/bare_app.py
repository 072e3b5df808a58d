"""Bare FastAPI serving the same JSON the generated service serves: the load test's baseline.

No middleware, no authentication, no validation of the body beyond JSON decoding, no response model:
each route returns the dict recorded from the real service (BENCH_BARE_PAYLOADS names the JSON file
holding them). The gap between this and the service is the cost of the core stack and the
template's code; everything else (uvicorn, uvloop, httptools, FastAPI routing) is in both.
"""

from __future__ import annotations

import contextvars
import importlib
import json
import os
import random
import sys
import time
from pathlib import Path
from typing import Annotated, Any

from fastapi import Body, FastAPI
from starlette.types import ASGIApp, Message, Receive, Scope, Send

PAYLOADS_VARIABLE = "BENCH_BARE_PAYLOADS"
WITH_CORE_VARIABLE = "BENCH_WITH_CORE"
"""`<service package>:<core module>`: wire the core around the same handlers exactly as a generated
service runs it: install_core as the service's app.py calls it (the middleware verifies every
request's account token; the probes are public) and every route a `feature_route`, as the service's
widget routes are. The core's own figure."""
MINIMAL_LAYER_VARIABLE = "BENCH_MINIMAL_LAYER"
"""`1`: wrap the same handlers in MinimalRequestLog instead: the floor under the core's figure."""
SERVICE_PUBLIC_PATHS = frozenset({"/livez", "/readyz"})
"""The paths the generated service's app.py declares public: its probes."""
SERVICE_FEATURE = "widgets"
"""The feature the generated service's widget routes require."""


def create_app() -> FastAPI:
    """The three routes of the load test, at the service's paths, with its status codes."""
    payloads: dict[str, Any] = json.loads(Path(os.environ[PAYLOADS_VARIABLE]).read_text())
    one: dict[str, Any] = payloads["one"]
    page: dict[str, Any] = payloads["page"]
    created: dict[str, Any] = payloads["created"]
    collection: str = payloads["collection"]
    app = FastAPI()
    if os.environ.get(WITH_CORE_VARIABLE):
        _install_core(app, os.environ[WITH_CORE_VARIABLE])
    elif os.environ.get(MINIMAL_LAYER_VARIABLE):
        app.add_middleware(MinimalRequestLog)

    @app.get(collection + "/{widget_id}")
    async def get_widget(widget_id: str) -> dict[str, Any]:  # noqa: ARG001 - routing only
        return one

    @app.get(collection)
    async def list_widgets() -> dict[str, Any]:
        return page

    @app.post(collection, status_code=201)
    async def create_widget(document: Annotated[dict[str, Any], Body()]) -> dict[str, Any]:
        del document  # decoded like the service's body, then unused: no validation, no storage
        return created

    return app


def _install_core(app: FastAPI, modules: str) -> None:
    """Install the core on `app` as a generated service does (before its routes are added)."""
    package, core = modules.split(":")
    settings = importlib.import_module(f"{package}.settings").get_settings()
    core_module = importlib.import_module(core)
    access = core_module.AccessPolicy(public_paths=SERVICE_PUBLIC_PATHS)
    core_module.install_core(app, settings.core_settings(), access=access)
    app.router.route_class = core_module.feature_route(SERVICE_FEATURE)


_request_id: contextvars.ContextVar[str] = contextvars.ContextVar("bench_request_id")
_json_str = json.encoder.encode_basestring


class MinimalRequestLog:
    """The least a request-logging layer costs: the floor under the core stack's figure.

    Pure ASGI, and only what any such layer does on every request: a generated request id, kept
    in a contextvar and echoed on the response, and one JSON line per request with the time,
    request id, method, path, status and duration, written like the core's. No authentication,
    no content negotiation, no media type, no error documents: what the core stack costs beyond
    this layer is the price of those."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        request_id = random.getrandbits(128).to_bytes(16).hex()
        token = _request_id.set(request_id)
        echoed = (b"x-request-id", request_id.encode())
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", ()), echoed]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            sys.stdout.write(
                f'{{"time":{time.time():.3f},"event":"request","request_id":"{request_id}",'
                f'"method":{_json_str(scope["method"])},"path":{_json_str(scope["path"])},'
                f'"status":{status},"duration_ms":{(time.perf_counter() - start) * 1000:.3f}}}\n'
            )
            sys.stdout.flush()
            _request_id.reset(token)
