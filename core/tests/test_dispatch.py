"""The core serves its route class's routes itself, exactly as FastAPI would have.

The same app answers every request twice: as installed (the core's own handler serves what it
can) and with a dependency override, which sends every request through FastAPI's router and
dependency solver. Status, headers (but the request id) and body must be the same.
"""

from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any

import fastapi.routing
import pytest
from fastapi import APIRouter, Depends, FastAPI, Request, Response
from fastapi.testclient import TestClient
from pydantic import BaseModel

from smplcore import (
    AccessPolicy,
    CollectionDocument,
    CoreSettings,
    CreateDocument,
    NotFoundError,
    PageDep,
    Resource,
    ResourceDocument,
    collection_document,
    current_account,
    feature_route,
    install_core,
    resource_document,
)

Headers = Callable[..., dict[str, str]]


class Gadget(BaseModel):
    name: str
    made_at: datetime


@dataclass
class Store:
    gadgets: dict[str, Gadget]
    events: list[str]


STORE = Store({}, [])


async def get_store(request: Request) -> AsyncIterator[Store]:
    """A dependency with yield: what it sees of the request's outcome is recorded."""
    account = await current_account(request)
    STORE.events.append(f"open {account.account_id}")
    try:
        yield STORE
    except LookupError:
        STORE.events.append("rolled back")
        raise
    STORE.events.append("closed")


StoreDep = Annotated[Store, Depends(get_store)]


def create_app(settings: CoreSettings) -> FastAPI:
    app = FastAPI()
    install_core(app, settings, access=AccessPolicy())
    router = APIRouter(prefix="/gadgets", route_class=feature_route("widgets.export"))

    @router.get("")
    async def list_gadgets(
        request: Request, page: PageDep, store: StoreDep
    ) -> CollectionDocument[Gadget]:
        names = sorted(store.gadgets)[page.offset : page.offset + page.limit]
        resources = [
            Resource[Gadget](type="gadgets", id=name, attributes=store.gadgets[name])
            for name in names
        ]
        return collection_document(
            resources, page=page, total=len(store.gadgets), url=str(request.url)
        )

    @router.get("/{name}")
    async def get_gadget(name: str, request: Request, store: StoreDep) -> ResourceDocument[Gadget]:
        if name == "missing":
            raise LookupError(name)
        if name not in store.gadgets:
            raise NotFoundError(f"No gadget {name!r}")
        resource = Resource[Gadget](type="gadgets", id=name, attributes=store.gadgets[name])
        return resource_document(resource, self_link=str(request.url))

    @router.post("", status_code=201)
    async def create_gadget(
        document: CreateDocument[Gadget], response: Response, store: StoreDep
    ) -> ResourceDocument[Gadget]:
        gadget = document.attributes_for("gadgets")
        store.gadgets[gadget.name] = gadget
        response.headers["Location"] = f"/v1/gadgets/{gadget.name}"
        resource = Resource[Gadget](type="gadgets", id=gadget.name, attributes=gadget)
        return resource_document(resource, self_link=f"/v1/gadgets/{gadget.name}")

    @router.get("/{name}/raw")
    async def raw_gadget(name: str) -> dict[str, Any]:
        return {"meta": {"name": name}}

    @router.get("/{name}/text", response_model=None)
    async def gadget_text(name: str) -> Response:
        return Response(f"gadget {name}", media_type="text/plain", headers={"X-Kind": "text"})

    @router.get("/{name}/teapot")
    async def gadget_teapot(name: str, store: StoreDep) -> ResourceDocument[Gadget]:
        return Response(status_code=418)  # type: ignore[return-value]

    async def not_found(request: Request, error: Exception) -> Response:
        return Response(f"gone: {error}", status_code=410, media_type="text/plain")

    app.add_exception_handler(LookupError, not_found)
    api = APIRouter(prefix="/v1")
    api.include_router(router)
    app.include_router(api)
    return app


BODY: dict[str, Any] = {
    "data": {"type": "gadgets", "attributes": {"name": "b", "made_at": "2025-01-02T03:04:05Z"}}
}
REQUESTS: list[tuple[str, str, dict[str, Any]]] = [
    ("GET", "/v1/gadgets/a", {}),
    ("GET", "/v1/gadgets/a/raw", {}),
    ("GET", "/v1/gadgets/a/text", {}),
    ("GET", "/v1/gadgets/a/teapot", {}),
    ("GET", "/v1/gadgets", {}),
    ("GET", "/v1/gadgets?page%5Bsize%5D=1&page%5Bnumber%5D=2&sort=name", {}),
    ("GET", "/v1/gadgets?page%5Bsize%5D=0", {}),
    ("GET", "/v1/gadgets?page%5Bsize%5D=%2B1", {}),
    ("GET", "/v1/gadgets?page%5Bnumber%5D=x", {}),
    ("GET", "/v1/gadgets/nope", {}),
    ("GET", "/v1/gadgets/missing", {}),
    ("GET", "/v1/gadgets/a", {"tier": "free"}),
    ("GET", "/v1/gadgets/a", {"token": False}),
    ("HEAD", "/v1/gadgets/a", {}),
    ("PUT", "/v1/gadgets", {}),
    ("GET", "/v1/nothing", {}),
    ("POST", "/v1/gadgets", {"json": BODY}),
    ("POST", "/v1/gadgets", {"json": {"data": {**BODY["data"], "type": "other"}}}),
    ("POST", "/v1/gadgets", {"json": {"data": {"type": "gadgets", "attributes": {}}}}),
    ("POST", "/v1/gadgets", {"content": b"{not json"}),
    ("POST", "/v1/gadgets", {"content": b"[" * 100_000}),
    ("POST", "/v1/gadgets", {"content": b"", "content_type": None}),
    ("POST", "/v1/gadgets", {"json": BODY, "content_type": "text/plain"}),
]


def _answers(
    app: FastAPI, auth_headers: Headers
) -> Iterator[tuple[int, list[tuple[str, str]], bytes, list[str]]]:
    STORE.gadgets.clear()
    STORE.gadgets["a"] = Gadget(name="a", made_at=datetime(2025, 1, 1, tzinfo=UTC))
    with TestClient(app) as client:
        for method, path, options in REQUESTS:
            STORE.events.clear()
            headers = auth_headers(tier=options.get("tier", "team"))
            if not options.get("token", True):
                headers.pop("Authorization")
            content_type = options.get("content_type", "application/vnd.api+json")
            headers.pop("Content-Type", None)
            if content_type is not None:
                headers["Content-Type"] = content_type
            response = client.request(
                method,
                path,
                headers=headers,
                content=options.get("content"),
                json=options.get("json"),
            )
            kept = [(k, v) for k, v in response.headers.items() if k != "x-request-id"]
            yield response.status_code, kept, response.content, list(STORE.events)


@pytest.fixture
def fastapi_only(monkeypatch: pytest.MonkeyPatch) -> Callable[[FastAPI], FastAPI]:
    def through_fastapi(app: FastAPI) -> FastAPI:
        app.dependency_overrides[print] = print  # any override: FastAPI serves every request
        return app

    return through_fastapi


def test_the_core_answers_exactly_as_fastapi(
    settings: CoreSettings, auth_headers: Headers, fastapi_only: Callable[[FastAPI], FastAPI]
) -> None:
    ours = list(_answers(create_app(settings), auth_headers))
    theirs = list(_answers(fastapi_only(create_app(settings)), auth_headers))
    for request, mine, fastapis in zip(REQUESTS, ours, theirs, strict=True):
        assert mine == fastapis, request
    statuses = [status for status, *_ in ours]
    assert statuses[:11] == [200, 200, 200, 418, 200, 200, 400, 200, 400, 404, 410]
    assert statuses[11:] == [403, 401, 405, 405, 404, 201, 409, 422, 400, 400, 422, 415]
    assert ours[0][3] == ["open acct-1", "closed"]
    assert ours[10][3] == ["open acct-1", "rolled back"]  # the dependency saw the error


def test_plain_requests_skip_fastapis_router_and_dependency_solver(
    settings: CoreSettings, auth_headers: Headers, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = create_app(settings)

    async def unused(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("FastAPI solved the dependencies of a request the core serves")

    monkeypatch.setattr(fastapi.routing, "solve_dependencies", unused)
    STORE.gadgets["a"] = Gadget(name="a", made_at=datetime(2025, 1, 1, tzinfo=UTC))
    with TestClient(app) as client:
        headers = auth_headers(tier="team")
        assert client.get("/v1/gadgets/a", headers=headers).status_code == 200
        assert client.get("/v1/gadgets?page%5Bsize%5D=5", headers=headers).status_code == 200
        assert client.post("/v1/gadgets", json=BODY, headers=headers).status_code == 201
        # FastAPI's to refuse: it solves the dependencies, here a 500
        assert client.get("/v1/gadgets?page%5Bsize%5D=0", headers=headers).status_code == 500
