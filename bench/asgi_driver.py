"""Send GET requests to bare_app in-process, through ASGI calls only: no server, no sockets.

`python asgi_driver.py PACKAGE:CORE REQUESTS`, in the generated service's venv, from a folder
holding bare_app.py (its environment variables choose the variant). Each request carries an account
token minted from the service's settings, like the load test's. Under `perf stat`, two runs with
different REQUESTS give the instructions one request costs: start-up cancels out, and so does
everything a server adds, which leaves the application's own cost per request.
"""

from __future__ import annotations

import asyncio
import importlib
import json
import os
import sys
from collections.abc import MutableMapping
from pathlib import Path
from typing import Any

from fastapi import FastAPI


def main() -> None:
    modules, requests = sys.argv[1], int(sys.argv[2])
    package, core = modules.split(":")
    settings = importlib.import_module(f"{package}.settings").get_settings()
    testing = importlib.import_module(f"{core}.testing")
    token = testing.make_account_token(
        settings.core_settings(), account_id="bench-a", tier="enterprise", expires_in=3600
    )
    sys.stdout = Path(os.devnull).open("w")  # noqa: SIM115 - the request lines, for the whole run
    bare_app = importlib.import_module("bare_app")  # beside this file in the scratch folder
    app: FastAPI = bare_app.create_app()
    payloads = json.loads(Path(os.environ[bare_app.PAYLOADS_VARIABLE]).read_text())
    path = f"{payloads['collection']}/{payloads['one']['data']['id']}"
    headers = [
        (b"host", b"127.0.0.1:8000"),
        (b"authorization", f"Bearer {token}".encode()),
        (b"accept", b"application/vnd.api+json"),
        (b"user-agent", b"asgi-driver"),
    ]
    statuses = asyncio.run(_drive(app, path, headers, requests))
    if set(statuses) != {200}:
        raise SystemExit(f"expected only 200s, got {sorted(set(statuses))}")


async def _drive(
    app: FastAPI, path: str, headers: list[tuple[bytes, bytes]], count: int
) -> list[int]:
    statuses: list[int] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: MutableMapping[str, Any]) -> None:
        if message["type"] == "http.response.start":
            statuses.append(message["status"])

    for _ in range(count):
        scope = {
            "type": "http",
            "asgi": {"version": "3.0", "spec_version": "2.3"},
            "http_version": "1.1",
            "server": ("127.0.0.1", 8000),
            "client": ("127.0.0.1", 50000),
            "scheme": "http",
            "method": "GET",
            "root_path": "",
            "path": path,
            "raw_path": path.encode(),
            "query_string": b"",
            "headers": headers,
            "state": {},
        }
        await app(scope, receive, send)
    return statuses


if __name__ == "__main__":
    main()
