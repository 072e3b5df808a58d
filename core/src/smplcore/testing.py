"""Helpers for the tests of services built on smplcore (needs the ``testing`` extra).

``make_account_token`` signs account tokens with the service's own (HS*) test settings;
``assert_jsonapi_document``/``assert_jsonapi_response`` check documents against the
official JSON:API 1.0 schema, of which smplcore ships a byte-identical copy;
``otlp_receiver`` collects the spans a service exports, decoded from OTLP's own protobuf.
"""

from __future__ import annotations

import gzip
import json
import re
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from typing import Any, Protocol, cast

import jwt
from jsonschema import Draft7Validator, ValidationError, validators
from jsonschema.protocols import Validator
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status
from referencing import Registry

from smplcore.jsonapi import JSONAPI_MEDIA_TYPE
from smplcore.settings import CoreSettings

__all__ = [
    "OtlpReceiver",
    "ReceivedSpan",
    "ResponseLike",
    "assert_jsonapi_document",
    "assert_jsonapi_response",
    "fixed_validator_class",
    "jsonapi_schema",
    "jsonapi_validator",
    "make_account_token",
    "otlp_receiver",
    "validator_for_schema",
]


class ResponseLike(Protocol):
    """What :func:`assert_jsonapi_response` reads: an ``httpx.Response`` or an
    ``httpx2.Response`` (Starlette's ``TestClient`` returns the latter when installed)."""

    @property
    def status_code(self) -> int: ...
    @property
    def headers(self) -> Mapping[str, str]: ...
    @property
    def content(self) -> bytes: ...
    @property
    def text(self) -> str: ...
    def json(self) -> Any: ...


def make_account_token(
    settings: CoreSettings,
    *,
    account_id: str,
    tier: str = "free",
    subject: str = "user-1",
    expires_in: int = 300,
) -> str:
    """A valid account token for ``settings`` (HS* account keys only: tests own the secret)."""
    auth = settings.auth
    if not auth.uses_hmac:
        raise ValueError("make_account_token signs with HS* account keys only")
    now = int(time.time())
    claims = {
        "iss": auth.account_token_issuer,
        "aud": auth.account_token_audience,
        "sub": subject,
        "iat": now,
        "exp": now + expires_in,
        "account_id": account_id,
        "tier": tier,
        "token_use": "account",
    }
    return jwt.encode(
        claims,
        auth.account_token_key.get_secret_value(),
        algorithm=auth.account_token_algorithms[0],
    )


def jsonapi_schema() -> dict[str, Any]:
    """The official JSON:API 1.0 response schema (a fresh copy)."""
    return cast("dict[str, Any]", json.loads(_schema_text()))


@cache
def _schema_text() -> str:
    path = resources.files("smplcore").joinpath("schemas/jsonapi-1.0.schema.json")
    return path.read_text(encoding="utf-8")


def _additional_properties(
    validator: Any, additional: Any, instance: Any, schema: Mapping[str, Any]
) -> Iterator[ValidationError]:
    """``additionalProperties`` as the JSON Schema spec defines it.

    jsonschema (<= 4.26 at least; python-jsonschema/jsonschema PR #1522) joins the
    ``patternProperties`` keys into one regex and skips it when that string is empty, so the
    match-everything pattern ``""``, which the JSON:API schema uses for ``meta`` and
    ``attributes``, is ignored and every member is reported as additional.
    """
    if not validator.is_type(instance, "object"):
        return
    properties = schema.get("properties", {})
    patterns = [re.compile(pattern) for pattern in schema.get("patternProperties", {})]
    extras = [
        name
        for name in instance
        if name not in properties and not any(p.search(name) for p in patterns)
    ]
    if validator.is_type(additional, "object"):
        for extra in extras:
            yield from validator.descend(instance[extra], additional, path=extra)
    elif additional is False and extras:
        unexpected = ", ".join(repr(extra) for extra in sorted(extras))
        yield ValidationError(f"Additional properties are not allowed ({unexpected} unexpected)")


def fixed_validator_class(base: type[Validator]) -> type[Validator]:
    """``base`` with a spec-conforming ``additionalProperties`` (see above)."""
    extend = cast("Callable[..., type[Validator]]", validators.extend)
    return extend(base, {"additionalProperties": _additional_properties})


def validator_for_schema(
    schema: Mapping[str, Any], *, registry: Registry[Any] | None = None
) -> Validator:
    """A validator of the schema's own dialect (with the fix above), e.g. for the JSON:API
    request schemas; ``registry`` resolves ``$ref``s offline."""
    cls = fixed_validator_class(validators.validator_for(schema))
    if registry is None:
        return cls(schema)
    return cls(schema, registry=registry)


@cache
def jsonapi_validator() -> Validator:
    """The validator of :func:`assert_jsonapi_document`.

    The schema declares draft 2020-12 but is written in draft-07 keywords (its README says
    draft-07): 2020-12 would silently ignore ``dependencies`` (``data`` and ``errors`` must
    not coexist; ``included`` needs ``data``), so it is read as draft-07, the stricter one.
    """
    return fixed_validator_class(Draft7Validator)(jsonapi_schema())


def assert_jsonapi_document(document: object) -> None:
    """Fail (``AssertionError``) unless ``document`` is a valid JSON:API 1.0 response document."""
    instance = cast("Any", document)
    errors = sorted(jsonapi_validator().iter_errors(instance), key=lambda e: str(e.path))
    if errors:
        lines = [f"- at /{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in errors[:10]]
        raise AssertionError("not a valid JSON:API document:\n" + "\n".join(lines))


def assert_jsonapi_response(response: ResponseLike, status: int) -> dict[str, Any]:
    """Check status, media type, ``X-Request-ID`` and the body's validity; return the body.

    A 204 must have no body; its returned body is ``{}``.
    """
    body_preview = response.text[:500]
    if response.status_code != status:
        raise AssertionError(f"status {response.status_code} != {status}: {body_preview}")
    if not response.headers.get("x-request-id"):
        raise AssertionError("the response has no X-Request-ID header")
    if status == 204:
        if response.content:
            raise AssertionError("a 204 response must have no body")
        return {}
    content_type = response.headers.get("content-type", "")
    if content_type != JSONAPI_MEDIA_TYPE:
        raise AssertionError(f"content-type {content_type!r} != {JSONAPI_MEDIA_TYPE!r}")
    try:
        document = response.json()
    except ValueError:
        raise AssertionError(f"the body is not JSON: {body_preview}") from None
    assert_jsonapi_document(document)
    return cast("dict[str, Any]", document)  # the schema requires an object


@dataclass(frozen=True)
class ReceivedSpan:
    """A span as an OTLP receiver decoded it; ids in lower-case hex, as log lines carry them."""

    sender: str
    """The path the exporter posted to, before ``/v1/traces`` (tells senders apart)."""
    service: str
    """The ``service.name`` of the span's resource."""
    name: str
    kind: str
    """``SERVER``, ``CLIENT``, ``INTERNAL``, ``PRODUCER`` or ``CONSUMER``."""
    trace_id: str
    span_id: str
    parent_span_id: str
    """Empty for a trace's first span."""
    attributes: dict[str, Any]
    failed: bool


class OtlpReceiver:
    """The spans exported to :attr:`endpoint` so far (see :func:`otlp_receiver`)."""

    def __init__(self, endpoint: str) -> None:
        self.endpoint = endpoint
        self._spans: list[ReceivedSpan] = []
        self._lock = threading.Lock()

    def spans(self) -> list[ReceivedSpan]:
        with self._lock:
            return list(self._spans)

    def wait_for(
        self, predicate: Callable[[list[ReceivedSpan]], bool], *, timeout: float = 15
    ) -> list[ReceivedSpan]:
        """The spans once ``predicate(spans)`` holds; ``AssertionError`` after ``timeout``."""
        deadline = time.monotonic() + timeout
        while not predicate(spans := self.spans()):
            if time.monotonic() > deadline:
                raise AssertionError(f"no such spans within {timeout} s; received: {spans}")
            time.sleep(0.05)
        return spans

    def receive(self, sender: str, request: ExportTraceServiceRequest) -> None:
        received = [
            _received(sender, _attributes(resource_spans.resource.attributes), span)
            for resource_spans in request.resource_spans
            for scope_spans in resource_spans.scope_spans
            for span in scope_spans.spans
        ]
        with self._lock:
            self._spans += received


def _received(sender: str, resource: dict[str, Any], span: Span) -> ReceivedSpan:
    return ReceivedSpan(
        sender=sender,
        service=str(resource.get("service.name", "")),
        name=span.name,
        kind=Span.SpanKind.Name(span.kind).removeprefix("SPAN_KIND_"),
        trace_id=span.trace_id.hex(),
        span_id=span.span_id.hex(),
        parent_span_id=span.parent_span_id.hex(),
        attributes=_attributes(span.attributes),
        failed=span.status.code == Status.STATUS_CODE_ERROR,
    )


def _attributes(pairs: Any) -> dict[str, Any]:
    """OTLP ``KeyValue``s as a dict of plain values (strings, numbers, booleans)."""
    return {
        pair.key: getattr(pair.value, pair.value.WhichOneof("value") or "string_value")
        for pair in pairs
    }


@contextmanager
def otlp_receiver() -> Iterator[OtlpReceiver]:
    """An OTLP/HTTP (protobuf) trace receiver on a free loopback port, for a test's lifetime.

    Point a service's ``otlp_endpoint`` at ``receiver.endpoint`` (add a path, e.g.
    ``/orders``, to tell several services apart: it is each span's ``sender``).
    """
    receiver: OtlpReceiver

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            if self.headers.get("Content-Encoding") == "gzip":
                body = gzip.decompress(body)
            sender, _, signal = self.path.rpartition("/v1/")
            if signal != "traces":
                self.send_error(404)
                return
            request = ExportTraceServiceRequest()
            request.ParseFromString(body)
            receiver.receive(sender, request)
            answer = ExportTraceServiceResponse().SerializeToString()
            self.send_response(200)
            self.send_header("Content-Type", "application/x-protobuf")
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    receiver = OtlpReceiver(f"http://127.0.0.1:{server.server_address[1]}")
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
