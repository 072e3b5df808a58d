"""Fuzzing a served generated service from its own OpenAPI document (schemathesis).

Every operation gets requests built from what the document declares (positive) and from what it
rules out (negative), with an account token and without one. Whatever the request, the service
answers no 5xx, answers with a status, media type and body its document declares, and the body is
a valid JSON:API document. The example count is bounded and the generation derandomized, so a run
fits CI and a failure repeats.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.strategies import SearchStrategy
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)
from schemathesis.core.result import Err

from smplcore.testing import assert_jsonapi_document
from tests.services import GeneratedService, ServiceCache, serving_service, variant_params

VARIANTS = {"defaults": {}, "postgres": {"database": "postgres"}}
"""The postgres variant stores what it is sent: the documents reach a real database."""
RESOURCE_TYPE = "widgets"
EXAMPLES_PER_OPERATION = 25
"""Per operation, generation mode and caller: the whole module fits in a CI job."""
Operation = schemathesis.APIOperation[Any, Any, Any, Any]
Case = schemathesis.Case[Operation]
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


def jsonapi_body(
    _ctx: schemathesis.CheckContext, response: schemathesis.Response, _case: Case
) -> None:
    """Every answer with a body is a JSON:API document (the OpenAPI schemas are looser)."""
    if response.content:
        assert_jsonapi_document(response.json())


@pytest.fixture(scope="module", params=variant_params(VARIANTS))
def served(
    request: pytest.FixtureRequest, services: ServiceCache, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[GeneratedService, str]]:
    """A variant served once for all its fuzzing runs (its log: service.log next to it)."""
    service = services.get(**VARIANTS[request.param])
    log = tmp_path_factory.mktemp("fuzzed") / "service.log"
    database_url = functools.partial(request.getfixturevalue, "database_url")
    with serving_service(service, log=log, database_url=database_url) as url:
        yield service, url


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def operations_of(base_url: str) -> list[Operation]:
    """The operations of the service's OpenAPI document (a failing test if one is unreadable)."""
    schema = schemathesis.openapi.from_url(f"{base_url}/openapi.json")
    results = list(schema.get_all_operations())
    assert [result.err() for result in results if isinstance(result, Err)] == []
    return [result.ok() for result in results if not isinstance(result, Err)]


def create_widget(base_url: str, headers: dict[str, str]) -> str:
    """A new widget of the caller's account: its id."""
    document = {"data": {"type": RESOURCE_TYPE, "attributes": {"name": "fuzzed"}}}
    response = httpx.post(f"{base_url}/v1/widgets", json=document, headers=headers)
    assert response.status_code == 201, response.text
    return str(response.json()["data"]["id"])


def has_input(operation: Operation) -> bool:
    """Whether the operation takes parameters or a body: what negative generation can break."""
    return any(True for _ in operation.iter_parameters()) or len(operation.body) > 0


def addressed_to_the_service(case: Case) -> Case:
    """The case's document, with the type and id the endpoint takes, to reach the storage.

    The OpenAPI document says `data.type` and `data.id` are strings, but a type other than the
    endpoint's is a 409, an id that is not the path's a 409, and a client-generated id a 403.
    """
    data = case.body.get("data") if isinstance(case.body, dict) else None
    if isinstance(data, dict):
        data["type"] = RESOURCE_TYPE
        if case.path_parameters:
            data["id"] = next(iter(case.path_parameters.values()))
        else:
            data.pop("id", None)
    return case


def not_found(
    _ctx: schemathesis.CheckContext, response: schemathesis.Response, _case: Case
) -> None:
    """Another account's widget, whatever is sent: never found, never changed."""
    assert response.status_code in {404, 422}, f"another account's widget: {response.status_code}"


def cases_of(
    operation: Operation, mode: schemathesis.GenerationMode, path: dict[str, str] | None = None
) -> SearchStrategy[Case]:
    """The operation's generated requests (to `path`'s parameters, when given)."""
    cases = operation.as_strategy(mode, path_parameters=path)
    if mode is schemathesis.GenerationMode.POSITIVE:
        return cases.map(addressed_to_the_service)
    return cases


def fuzz(
    cases: SearchStrategy[Case],
    base_url: str,
    headers: dict[str, str],
    checks: tuple[schemathesis.CheckFunction, ...] = (jsonapi_body,),
) -> None:
    """Send the generated requests; raise on the first failing check."""

    @given(case=cases)
    @settings(
        max_examples=EXAMPLES_PER_OPERATION,
        derandomize=True,
        database=None,
        deadline=None,
        phases=[Phase.explicit, Phase.generate, Phase.shrink],
        suppress_health_check=list(HealthCheck),  # each example is an HTTP request: slow
    )
    def send(case: Case) -> None:
        case.call_and_validate(
            base_url=base_url, headers=headers, checks=CHECKS, additional_checks=list(checks)
        )

    send()


def failures_of(
    runs: list[tuple[Operation, SearchStrategy[Case]]],
    base_url: str,
    headers: dict[str, str],
    checks: tuple[schemathesis.CheckFunction, ...] = (jsonapi_body,),
) -> str:
    """Fuzz every operation of `runs` with its cases: what each failing one got, or ""."""
    failures = []
    for operation, cases in runs:
        try:
            fuzz(cases, base_url, headers, checks)
        except (AssertionError, BaseExceptionGroup) as error:  # schemathesis' failures
            failures.append(f"{operation.label}: {error}")
    return "\n\n".join(failures)


@pytest.mark.parametrize("caller", ["account", "anonymous"])
@pytest.mark.parametrize("mode", list(schemathesis.GenerationMode), ids=str)
def test_fuzzed_requests_get_declared_json_api_answers(
    served: tuple[GeneratedService, str], caller: str, mode: schemathesis.GenerationMode
) -> None:
    service, base_url = served
    headers = bearer(service.account_token()) if caller == "account" else {}
    # Positive PATCH documents go to a widget of the caller, to reach the storage's update.
    existing = {"widget_id": create_widget(base_url, headers)} if headers else {}
    operations = operations_of(base_url)
    if mode is schemathesis.GenerationMode.NEGATIVE:
        operations = [operation for operation in operations if has_input(operation)]
    assert operations
    runs = [
        (op, cases_of(op, mode, existing if op.method.lower() == "patch" else None))
        for op in operations
    ]
    assert failures_of(runs, base_url, headers) == ""


def test_another_accounts_widget_is_not_found_whatever_is_sent(
    served: tuple[GeneratedService, str],
) -> None:
    service, base_url = served
    widget = {"widget_id": create_widget(base_url, bearer(service.account_token("acct-1")))}
    other = bearer(service.account_token("acct-2"))
    operations = [op for op in operations_of(base_url) if "{widget_id}" in op.path]
    assert operations
    runs = [(op, cases_of(op, schemathesis.GenerationMode.POSITIVE, widget)) for op in operations]
    assert failures_of(runs, base_url, other, checks=(jsonapi_body, not_found)) == ""
