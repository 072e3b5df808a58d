"""The routes of an app, those of its included routers too: what the 405's ``Allow``, the route
template of traces and metrics, the core's own dispatch and the OpenAPI document each walk."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, cast

import fastapi.routing
from fastapi import FastAPI


def api_routes(app: FastAPI) -> Iterator[Any]:
    """Every route of ``app``, in FastAPI's order, with the effective path, dependencies and
    options of those of included routers (which FastAPI 0.165 keeps nested:
    ``fastapi.routing.iter_route_contexts`` lists them; an older FastAPI copies them into the
    app's list)."""
    iter_route_contexts = getattr(fastapi.routing, "iter_route_contexts", None)
    if iter_route_contexts is None:
        return iter(app.routes)
    return cast("Iterator[Any]", iter_route_contexts(app.routes))
