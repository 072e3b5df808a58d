"""The service in the developer portal: catalog-info.yaml (Backstage's software catalog) and
openapi.json, the committed OpenAPI document its API entity reads.

Every catalog-info.yaml is validated as Backstage reads it (tests/backstage_catalog.py). The
workspace's root, members and libraries are checked in tests/test_workspace.py, on its workspace;
the API entity against the served /openapi.json in tests/test_generated.py, for every variant.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from harness.openapi_seed import SEED
from tests.backstage_catalog import entity_ref, problems, read_entities
from tests.services import GeneratedService, ServiceCache


def by_kind(path: Path) -> dict[str, dict[str, Any]]:
    return {entity["kind"]: entity for entity in read_entities(path)}


@pytest.mark.parametrize("database", ["none", "postgres"])
def test_the_service_s_entities_are_valid_and_say_who_owns_it(
    database: str, render: Callable[..., GeneratedService]
) -> None:
    service = render(database=database, owner_team="payments", slack_channel="#orders-oncall")
    entities = read_entities(service.path / "catalog-info.yaml")
    refs = [entity_ref(entity) for entity in entities]
    expected = ["component:default/orders", "api:default/orders"]
    assert refs == expected + (["resource:default/orders-database"] if database != "none" else [])
    component, api = entities[:2]
    assert component["metadata"]["annotations"] == {
        "github.com/project-slug": "smplkit/orders",
        "backstage.io/source-location": "url:https://github.com/smplkit/orders/tree/main/",
        "slack.com/bot-notify": "#orders-oncall",
    }
    assert component["metadata"]["description"] == "The orders product service."
    for entity in entities:
        assert entity["spec"]["owner"] == "group:payments"
        assert entity["spec"]["system"] == "product-services"
    assert component["spec"]["type"] == "service"
    assert component["spec"]["providesApis"] == ["orders"]
    assert api["spec"]["type"] == "openapi"
    assert api["spec"]["definition"] == (service.path / "openapi.json").read_text()
    if database == "postgres":
        assert component["spec"]["dependsOn"] == ["resource:orders-database"]


def test_the_platform_settings_name_the_system_and_the_repository(
    render: Callable[..., GeneratedService],
) -> None:
    service = render(backstage_system="payments-platform", github_organization="acme")
    component = by_kind(service.path / "catalog-info.yaml")["Component"]
    assert component["spec"]["system"] == "payments-platform"
    assert component["metadata"]["annotations"]["github.com/project-slug"] == "acme/orders"
    assert service.answers["github_repository"] == "acme/orders"


def test_an_entity_backstage_would_refuse_is_named() -> None:
    """The validation is live: Backstage's schema and its name formats both refuse."""
    entity = {
        "apiVersion": "backstage.io/v1alpha1",
        "kind": "Component",
        "metadata": {"name": "Orders Service", "tags": ["Python"]},
        "spec": {"type": "service", "lifecycle": "production"},
    }
    found = " | ".join(problems(entity))
    assert "'owner' is a required property" in found
    assert "metadata.name: 'Orders Service' does not match" in found
    assert "metadata.tags.0: 'Python' does not match" in found


def test_a_new_service_starts_with_the_seed_named_for_it(
    render: Callable[..., GeneratedService],
) -> None:
    """A new service's openapi.json is template/openapi.json.jinja, which `make openapi-seed`
    writes from a generated service, rendered verbatim but for its title (tests/test_generated.py
    checks it against the served document, variant by variant)."""
    service = render(service_name="billing-events")
    rendered = (service.path / "openapi.json").read_text()
    assert rendered == SEED.read_text().replace("{{ service_name }}", "billing-events")
    assert json.loads(rendered)["info"]["title"] == "billing-events"


@pytest.mark.xdist_group("defaults")
def test_make_openapi_writes_the_committed_document_and_a_stale_one_fails_make_check(
    services: ServiceCache,
) -> None:
    service = services.get()
    document = service.path / "openapi.json"
    service.run("make", "openapi")
    assert service.run("git", "status", "--porcelain").stdout == ""
    stale = json.loads(document.read_text())
    stale["info"]["version"] = "0.0.9"
    document.write_text(json.dumps(stale, indent=2) + "\n")
    try:
        check = service.run("make", "check", check=False)
    finally:
        service.run("git", "checkout", "--", "openapi.json")
    assert check.returncode != 0
    output = check.stdout + check.stderr
    assert "FAILED tests/test_openapi.py::test_openapi_json_is_the_served_document" in output
    assert "run `make openapi` and commit it" in output
