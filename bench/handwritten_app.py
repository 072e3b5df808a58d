"""The widget API written by hand the idiomatic FastAPI way: the generated service's anchor.

What a team writes without the template: an `APIRouter("/widgets")` included in an
`APIRouter("/v1")`, pydantic models for the request and response documents, one dependency for the
store (widgets kept in the process, listed oldest first like the service's). No authentication, no
request log, no JSON:API negotiation or error documents: the gap between this and the generated
service is what those cost, plus whatever the core does better than FastAPI. It serves the same
JSON as the service (checked before any load): each caller (`Authorization`, never verified; the
POSTs are another account's, as for the service) has a store of the recorded page's widgets.
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Literal
from uuid import uuid4

from fastapi import APIRouter, Depends, FastAPI, HTTPException, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field

PAYLOADS_VARIABLE = "BENCH_BARE_PAYLOADS"
"""bare_app's payloads file: its page's widgets seed each store (a literal: the app's folder holds
only its own files)."""


class WidgetCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Annotated[str, Field(min_length=1, max_length=100)]
    description: Annotated[str | None, Field(max_length=1000)] = None


class WidgetAttributes(WidgetCreate):
    created_at: datetime
    updated_at: datetime


class NewWidget(BaseModel):
    type: Literal["widgets"]
    attributes: WidgetCreate


class CreateWidgetDocument(BaseModel):
    data: NewWidget


class SelfLink(BaseModel):
    self: str


class WidgetResource(BaseModel):
    type: Literal["widgets"] = "widgets"
    id: str
    attributes: WidgetAttributes
    links: SelfLink


class WidgetDocument(BaseModel):
    data: WidgetResource
    links: SelfLink


class PageLinks(BaseModel):
    self: str
    first: str
    prev: str | None
    next: str | None
    last: str


class PageInfo(BaseModel):
    number: int
    size: int
    pages: int


class PageMeta(BaseModel):
    total: int
    page: PageInfo


class WidgetPage(BaseModel):
    data: list[WidgetResource]
    links: PageLinks
    meta: PageMeta


class WidgetStore:
    def __init__(self, widgets: dict[str, WidgetAttributes]) -> None:
        self.widgets = dict(widgets)

    def page(self, offset: int, limit: int) -> tuple[list[tuple[str, WidgetAttributes]], int]:
        ordered = sorted(self.widgets.items(), key=lambda item: (item[1].created_at, item[0]))
        return ordered[offset : offset + limit], len(ordered)


async def get_store(request: Request) -> WidgetStore:
    stores: dict[str, WidgetStore] = request.app.state.stores
    caller = request.headers.get("authorization", "")
    if caller not in stores:
        stores[caller] = WidgetStore(request.app.state.seeded)
    return stores[caller]


StoreDep = Annotated[WidgetStore, Depends(get_store)]
router = APIRouter(prefix="/widgets", tags=["widgets"])


@router.get("")
async def list_widgets(
    request: Request,
    store: StoreDep,
    number: Annotated[int, Query(alias="page[number]", ge=1)] = 1,
    size: Annotated[int, Query(alias="page[size]", ge=1, le=100)] = 20,
) -> WidgetPage:
    widgets, total = store.page((number - 1) * size, size)
    collection = str(request.url.replace(query=""))
    pages = -(-total // size)
    last = max(pages, 1)

    def page_link(page: int) -> str:
        return f"{collection}?page[number]={page}&page[size]={size}"

    return WidgetPage(
        data=[
            WidgetResource(id=id_, attributes=widget, links=SelfLink(self=f"{collection}/{id_}"))
            for id_, widget in widgets
        ],
        links=PageLinks(
            self=str(request.url),
            first=page_link(1),
            prev=page_link(min(number - 1, last)) if number > 1 else None,
            next=page_link(number + 1) if number < pages else None,
            last=page_link(last),
        ),
        meta=PageMeta(total=total, page=PageInfo(number=number, size=size, pages=pages)),
    )


@router.get("/{widget_id}")
async def get_widget(widget_id: str, request: Request, store: StoreDep) -> WidgetDocument:
    widget = store.widgets.get(widget_id)
    if widget is None:
        raise HTTPException(404, f"There is no widget with id {widget_id!r}.")
    return _document(widget_id, widget, str(request.url))


@router.post("", status_code=201)
async def create_widget(
    document: CreateWidgetDocument, request: Request, response: Response, store: StoreDep
) -> WidgetDocument:
    now = datetime.now(UTC)
    widget = WidgetAttributes(
        **document.data.attributes.model_dump(), created_at=now, updated_at=now
    )
    widget_id = str(uuid4())
    store.widgets[widget_id] = widget
    url = f"{request.url}/{widget_id}"
    response.headers["Location"] = url
    return _document(widget_id, widget, url)


def _document(widget_id: str, widget: WidgetAttributes, url: str) -> WidgetDocument:
    return WidgetDocument(
        data=WidgetResource(id=widget_id, attributes=widget, links=SelfLink(self=url)),
        links=SelfLink(self=url),
    )


def create_app() -> FastAPI:
    app = FastAPI()
    app.state.stores = {}
    app.state.seeded = seeded = {}
    payloads = os.environ.get(PAYLOADS_VARIABLE)
    if payloads:
        for widget in json.loads(Path(payloads).read_text())["page"]["data"]:
            seeded[widget["id"]] = WidgetAttributes.model_validate(widget["attributes"])
    api = APIRouter(prefix="/v1")
    api.include_router(router)
    app.include_router(api)
    return app
