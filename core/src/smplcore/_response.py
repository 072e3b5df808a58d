"""The JSON:API media type and the response that carries it, below both the documents
(:mod:`smplcore.jsonapi`, which re-exports them) and the errors (:mod:`smplcore.errors`), which
each answer with it."""

from __future__ import annotations

from typing import Final

from fastapi.responses import JSONResponse

JSONAPI_MEDIA_TYPE: Final = "application/vnd.api+json"


class JsonApiResponse(JSONResponse):
    """A JSON response with the JSON:API media type."""

    media_type = JSONAPI_MEDIA_TYPE
