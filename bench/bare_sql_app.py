"""Bare FastAPI and SQLAlchemy making the widget queries of a `database: postgres` service.

The baseline of the load test against PostgreSQL: the statements of the service's repository, on
the same driver (psycopg) with a pool as large as the service's (both hold a connection per load
connection, so neither reconnects under load), written with SQLAlchemy Core and returned as plain
dicts. No middleware, no authentication (each route serves one fixed account), no validation
beyond JSON decoding: the gap between this and the service is what the template adds on top of the
database. Served by the service's own uvicorn and interpreter, from a folder holding only this
file, in the service's environment (its DATABASE_URL and DATABASE_POOL_SIZE).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Annotated, Any

import sqlalchemy as sa
from fastapi import Body, FastAPI, HTTPException, Request

COLLECTION_VARIABLE = "BENCH_SQL_COLLECTION"
"""The service's path of the widgets (`/v1/widgets`)."""
ACCOUNTS_VARIABLE = "BENCH_SQL_ACCOUNTS"
"""`READER,WRITER`: the account whose widgets the GET routes read, the one the POST creates for."""


def create_app() -> FastAPI:
    # Its asyncio support needs greenlet, which the service's venv has and the bench's may not.
    from sqlalchemy.ext.asyncio import create_async_engine  # noqa: PLC0415 - see above

    widgets = sa.Table(
        "widgets",
        sa.MetaData(),
        sa.Column("id", sa.Uuid, primary_key=True),
        sa.Column("account_id", sa.Text, nullable=False),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("description", sa.Text),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    url = os.environ["DATABASE_URL"].replace("postgresql://", "postgresql+psycopg://", 1)
    engine = create_async_engine(url, pool_size=int(os.environ["DATABASE_POOL_SIZE"]))
    collection = os.environ[COLLECTION_VARIABLE]
    reader, writer = os.environ[ACCOUNTS_VARIABLE].split(",")

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        await engine.dispose()

    app = FastAPI(lifespan=lifespan)

    @app.get(collection + "/{widget_id}")
    async def get_widget(widget_id: uuid.UUID, request: Request) -> dict[str, Any]:
        owned = (widgets.c.id == widget_id) & (widgets.c.account_id == reader)
        async with engine.connect() as connection:
            row = (await connection.execute(sa.select(widgets).where(owned))).mappings().first()
        if row is None:
            raise HTTPException(404)
        return {"data": _resource(row, collection), "links": {"self": str(request.url)}}

    @app.get(collection)
    async def list_widgets(request: Request) -> dict[str, Any]:
        size = int(request.query_params.get("page[size]", "20"))
        number = int(request.query_params.get("page[number]", "1"))
        owned = widgets.c.account_id == reader
        page = (
            sa.select(widgets)
            .where(owned)
            .order_by(widgets.c.created_at, widgets.c.id)
            .offset((number - 1) * size)
            .limit(size)
        )
        count = sa.select(sa.func.count()).select_from(widgets).where(owned)
        async with engine.connect() as connection:
            total = await connection.scalar(count)
            rows = (await connection.execute(page)).mappings().all()
        return {
            "data": [_resource(row, collection) for row in rows],
            "links": {"self": str(request.url)},
            "meta": {"total": total},
        }

    @app.post(collection, status_code=201)
    async def create_widget(document: Annotated[dict[str, Any], Body()]) -> dict[str, Any]:
        attributes = document["data"]["attributes"]
        now = datetime.now(UTC)
        values = {
            "id": uuid.uuid4(),
            "account_id": writer,
            "name": attributes["name"],
            "description": attributes.get("description"),
            "created_at": now,
            "updated_at": now,
        }
        async with engine.begin() as connection:
            await connection.execute(sa.insert(widgets).values(values))
        return {"data": _resource(values, collection)}

    return app


def _resource(row: Mapping[Any, Any], collection: str) -> dict[str, Any]:  # RowMapping: any key
    return {
        "type": "widgets",
        "id": str(row["id"]),
        "attributes": {
            "name": row["name"],
            "description": row["description"],
            "created_at": row["created_at"].isoformat(),
            "updated_at": row["updated_at"].isoformat(),
        },
        "links": {"self": f"{collection}/{row['id']}"},
    }
