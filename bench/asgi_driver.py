"""Send the load test's requests to one of its servers in-process: ASGI calls only.

`python asgi_driver.py PACKAGE:CORE SERVER REQUESTS`, in the generated service's venv, from a folder
holding bare_app.py, handwritten_app.py and the payloads file bare_app reads (BENCH_BARE_PAYLOADS),
with the service's environment: SERVER (one of SERVERS) is started and seeded, warmed up, then
sent REQUESTS requests of each endpoint in turn (ENDPOINTS), with a call to getppid() before each
endpoint's and after the last. Under callgrind with `--dump-before=getppid`, each endpoint's
instructions land in a dump of their own: no start-up, no server, only the application's cost.
`python asgi_driver.py PACKAGE:CORE record PATH` writes that payloads file: the service's own
documents, as the load test records them. Requests carry the load test's headers and an account
token minted from the service's settings.
"""

from __future__ import annotations

import asyncio
import importlib
import json
import os
import sys
from collections.abc import AsyncIterator, MutableMapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI

SERVERS = ("bare", "handwritten", "core", "minimal", "service")
"""A: bare FastAPI; B: the hand-written idiomatic API; C: the core on A's handlers; D: the
minimal request-logging layer on A's handlers; E: the generated service."""
ENDPOINTS = ("one", "page", "created")
SEEDED = 50
WARMUP = 50
JSONAPI = b"application/vnd.api+json"
CREATED, OK = 201, 200
CREATE_BODY = (
    b'{"data":{"type":"widgets","attributes":'
    b'{"name":"bench widget","description":"Created by the load test."}}}'
)
"""bench/load.py's CREATE_BODY."""
PAGE_QUERY = b"page%5Bsize%5D=50"


class Driver:
    """One server's app, started, seeded, and the ASGI scope of each endpoint."""

    def __init__(self, modules: str, server: str) -> None:
        package, core = modules.split(":")
        settings = importlib.import_module(f"{package}.settings").get_settings()
        testing = importlib.import_module(f"{core}.testing")
        self.tokens = {
            account: testing.make_account_token(
                settings.core_settings(), account_id=account, tier="enterprise", expires_in=3600
            ).encode()
            for account in ("bench-a", "bench-b")
        }
        self.collection = "/v1/widgets"
        self.app = self._create(package, core, server)
        self.state: dict[str, Any] = {}
        self.widget_id = "w-1"

    @staticmethod
    def _create(package: str, core: str, server: str) -> FastAPI:
        if server == "service":
            app: FastAPI = importlib.import_module(f"{package}.app").create_app()
            return app
        if server == "handwritten":
            return importlib.import_module("handwritten_app").create_app()  # type: ignore[no-any-return]
        bare_app = importlib.import_module("bare_app")
        os.environ.pop(bare_app.WITH_CORE_VARIABLE, None)
        os.environ.pop(bare_app.MINIMAL_LAYER_VARIABLE, None)
        if server == "core":
            os.environ[bare_app.WITH_CORE_VARIABLE] = f"{package}:{core}"
        elif server == "minimal":
            os.environ[bare_app.MINIMAL_LAYER_VARIABLE] = "1"
        return bare_app.create_app()  # type: ignore[no-any-return]

    @asynccontextmanager
    async def started(self) -> AsyncIterator[Driver]:
        """The app's lifespan, and the reader's widgets created through its own POST route."""
        async with self.app.router.lifespan_context(self.app) as state:
            self.state = dict(state or {})
            for number in range(SEEDED):
                body = json.dumps(
                    {"data": {"type": "widgets", "attributes": {"name": f"widget {number:02d}"}}}
                ).encode()
                status, document = await self.call("POST", self.collection, b"", "bench-a", body)
                if status != CREATED:
                    raise RuntimeError(f"seeding answered {status}: {document!r}")
            status, page = await self.call("GET", self.collection, PAGE_QUERY, "bench-a")
            if status != OK:
                raise RuntimeError(f"the page answered {status}: {page!r}")
            self.widget_id = json.loads(page)["data"][0]["id"]
            yield self

    def request(self, endpoint: str) -> tuple[str, str, bytes, str, bytes]:
        """method, path, query, account, body."""
        if endpoint == "one":
            return "GET", f"{self.collection}/{self.widget_id}", b"", "bench-a", b""
        if endpoint == "page":
            return "GET", self.collection, PAGE_QUERY, "bench-a", b""
        return "POST", self.collection, b"", "bench-b", CREATE_BODY

    async def call(
        self, method: str, path: str, query: bytes, account: str, body: bytes = b""
    ) -> tuple[int, bytes]:
        headers = [
            (b"host", b"127.0.0.1:8000"),
            (b"authorization", b"Bearer " + self.tokens[account]),
            (b"accept", JSONAPI),
            (b"user-agent", b"asgi-driver"),
        ]
        if body:
            headers += [(b"content-type", JSONAPI), (b"content-length", str(len(body)).encode())]
        scope = {
            "type": "http",
            "asgi": {"version": "3.0", "spec_version": "2.3"},
            "http_version": "1.1",
            "server": ("127.0.0.1", 8000),
            "client": ("127.0.0.1", 50000),
            "scheme": "http",
            "method": method,
            "root_path": "",
            "path": path,
            "raw_path": path.encode(),
            "query_string": query,
            "headers": headers,
            "state": dict(self.state),
        }
        status = 0
        chunks: list[bytes] = []

        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": body, "more_body": False}

        async def send(message: MutableMapping[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            elif message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))

        await self.app(scope, receive, send)
        return status, b"".join(chunks)

    async def drive(self, endpoint: str, count: int) -> None:
        request = self.request(endpoint)
        expected = CREATED if endpoint == "created" else OK
        for _ in range(count):
            status, body = await self.call(*request)
            if status != expected:
                raise RuntimeError(f"{endpoint} answered {status}, not {expected}: {body[:500]!r}")


async def _record(modules: str) -> dict[str, Any]:
    driver = Driver(modules, "service")
    async with driver.started():
        documents = {}
        for endpoint in ENDPOINTS:
            _, body = await driver.call(*driver.request(endpoint))
            documents[endpoint] = json.loads(body)
    return {**documents, "collection": driver.collection}


async def _run(modules: str, server: str, count: int) -> None:
    driver = Driver(modules, server)
    async with driver.started():
        for endpoint in ENDPOINTS:
            await driver.drive(endpoint, WARMUP)
        for endpoint in ENDPOINTS:
            os.getppid()  # the counter's mark: what follows is this endpoint's
            await driver.drive(endpoint, count)
        os.getppid()


def main() -> None:
    modules, server = sys.argv[1], sys.argv[2]
    sys.stdout = Path(os.devnull).open("w")  # noqa: SIM115 - the request lines, for the whole run
    if server == "record":
        Path(sys.argv[3]).write_text(json.dumps(asyncio.run(_record(modules))))
        return
    if server not in SERVERS:
        raise SystemExit(f"usage: SERVER in {SERVERS}")
    asyncio.run(_run(modules, server, int(sys.argv[3])))


if __name__ == "__main__":
    main()
