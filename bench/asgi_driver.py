"""`python asgi_driver.py MODULE:FACTORY REQUESTS SETUP`: the load test's requests sent to one of
its apps in-process, through ASGI calls (no server), where uvicorn would run it. SETUP (JSON) names
the widgets' `collection`, the `page` query, the POST's `body`, the `reader`'s and `writer`'s
tokens, and the file to `record` E's answers in (E, seeded first), or "". After a warm-up, each
endpoint's REQUESTS requests follow a call of getppid(), and the last are followed by one: the
marks callgrind counts between.
"""

import asyncio
import importlib
import json
import os
import sys
from collections.abc import MutableMapping
from pathlib import Path
from typing import Any

JSONAPI = b"application/vnd.api+json"


async def drive(app_spec: str, count: int, setup: dict[str, Any]) -> dict[str, Any]:
    """The app's answer to each endpoint."""
    module, _, factory = app_spec.partition(":")
    app = getattr(importlib.import_module(module), factory)()
    reader, writer = (f"Bearer {setup[account]}".encode() for account in ("reader", "writer"))
    collection, page = setup["collection"], setup["collection"] + setup["page"]
    async with app.router.lifespan_context(app) as state:

        async def call(method: str, target: str, token: bytes, body: bytes = b"") -> bytes:
            path, _, query = target.partition("?")
            headers = [(b"host", b"127.0.0.1"), (b"authorization", token), (b"accept", JSONAPI)]
            if body:
                headers += [(b"content-type", JSONAPI), (b"content-length", b"%d" % len(body))]
            scope = {
                "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": method,
                "scheme": "http", "path": path, "raw_path": path.encode(), "root_path": "",
                "query_string": query.encode(), "headers": headers, "state": dict(state or {}),
                "server": ("127.0.0.1", 80), "client": ("127.0.0.1", 50000),
            }  # fmt: skip
            answer: dict[str, Any] = {"body": b""}

            async def receive() -> dict[str, Any]:
                return {"type": "http.request", "body": body}

            async def send(message: MutableMapping[str, Any]) -> None:
                if message["type"] == "http.response.start":
                    answer["status"] = message["status"]
                else:
                    answer["body"] += message.get("body", b"")

            await app(scope, receive, send)
            if answer["status"] not in (200, 201):  # a refusal must never pass for a cheap answer
                raise RuntimeError(f"{method} {target} answered {answer}")
            return bytes(answer["body"])

        for number in range(50 if setup["record"] else 0):
            widget = {"data": {"type": "widgets", "attributes": {"name": f"widget {number:02d}"}}}
            await call("POST", collection, reader, json.dumps(widget).encode())
        first = json.loads(await call("GET", page, reader))["data"][0]["id"]
        endpoints: dict[str, tuple[str, str, bytes, bytes]] = {
            "one": ("GET", f"{collection}/{first}", reader, b""),
            "page": ("GET", page, reader, b""),
            "created": ("POST", collection, writer, json.dumps(setup["body"]).encode()),
        }
        answers = {key: json.loads(await call(*request)) for key, request in endpoints.items()}
        for request in [*endpoints.values()] * 50:  # the warm-up
            await call(*request)
        for request in endpoints.values():
            os.getppid()
            for _ in range(count):
                await call(*request)
        os.getppid()
    return {**answers, "collection": collection}


if __name__ == "__main__":
    sys.stdout = Path(os.devnull).open("w")  # noqa: SIM115 - the request log lines, as under load
    setup = json.loads(sys.argv[3])
    answers = asyncio.run(drive(sys.argv[1], int(sys.argv[2]), setup))
    if setup["record"]:
        Path(setup["record"]).write_text(json.dumps(answers))
