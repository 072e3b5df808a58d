"""A resource added by touching only team-owned files serves at once, and `copier update` keeps it.

The team copies `widgets/` to `parcels/` (a name as long as "widgets", so the copy stays formatted),
gives parcels an attribute of their own in `schemas.py` (with the database, a column in the table
too), includes its router in `api.py`, grants its feature to two tiers in `catalog.py` as its
docstring shows, writes its own test (and, with the database, its migration), exports its OpenAPI
document (`make openapi`), commits, and updates to the newest template release
(tests/update_support.py). Every path the team changed is either new or team-owned (copier.yml's
`team_owned_paths`); the service passes its own checks before and after the update.
"""

from __future__ import annotations

import fnmatch
import json
import re
import textwrap
from dataclasses import dataclass

import pytest
import yaml

from harness.commands import REPO_ROOT
from harness.generate import update
from tests.services import GeneratedService, variant_params
from tests.update_support import LATEST, TeamWork, build_versions, generate, status

VARIANTS = {"defaults": {}, "postgres": {"database": "postgres"}}
WIDGETS_MIGRATION = "756b60d54898"
PARCELS_MIGRATION = "0f1e2d3c4b5a"
TEAM_TEST = """\
from fastapi.testclient import TestClient

from smplcore import JSONAPI_MEDIA_TYPE
from smplcore.testing import assert_jsonapi_response, make_account_token

from orders.settings import Settings

PARCEL = {"data": {"type": "parcels", "attributes": {"name": "Box", "weight_grams": 1200}}}


def headers(settings: Settings, tier: str) -> dict[str, str]:
    token = make_account_token(settings.core_settings(), account_id="account-a", tier=tier)
    return {"Authorization": f"Bearer {token}", "Content-Type": JSONAPI_MEDIA_TYPE}


def test_a_tier_with_parcels_keeps_them(client: TestClient, settings: Settings) -> None:
    team = headers(settings, "team")
    created = assert_jsonapi_response(client.post("/v1/parcels", json=PARCEL, headers=team), 201)
    assert created["data"]["attributes"]["weight_grams"] == 1200
    url = created["data"]["links"]["self"]
    assert assert_jsonapi_response(client.get(url, headers=team), 200) == created


def test_a_tier_without_parcels_is_refused(client: TestClient, settings: Settings) -> None:
    response = client.get("/v1/parcels", headers=headers(settings, "free"))
    assert assert_jsonapi_response(response, 403)["errors"][0]["code"] == "feature_not_in_tier"
"""
TEAM_OWNED_EDITS = ("src/orders/api.py", "src/orders/catalog.py")
TEAM_TESTS_PASSED = (
    "tests/test_parcels.py::test_a_tier_with_parcels_keeps_them PASSED",
    "tests/test_parcels.py::test_a_tier_without_parcels_is_refused PASSED",
)


def team_owned_paths() -> list[str]:
    questions = yaml.safe_load((REPO_ROOT / "copier.yml").read_text())
    return list(questions["team_owned_paths"]["default"])


def parcels(text: str) -> str:
    """The widgets' code for parcels."""
    for widget, parcel in (("widget", "parcel"), ("Widget", "Parcel"), ("WIDGET", "PARCEL")):
        text = text.replace(widget, parcel)
    return text


def with_weight(module: str, text: str) -> str:
    """The parcels' modules with an attribute of their own: in the schemas, and in the table."""
    additions = {
        "schemas.py": (
            "    description: Description | None = None\n",
            "weight_grams: int | None = None",
        ),
        "storage.py": ("    description: Mapped[str | None]\n", "weight_grams: Mapped[int | None]"),
    }
    if module not in additions or additions[module][0] not in text:
        return text
    after, line = additions[module]
    return text.replace(after, f"{after}    {line}\n", 1)


def catalog_example(catalog: str) -> tuple[str, str]:
    """The import line and the SERVICE_PRODUCTS of catalog.py's docstring example, for parcels."""
    example = re.search(r"e\.g\.\n\n((?: {4}.*\n|\n)+)", catalog)
    assert example, catalog
    imports, products = textwrap.dedent(example[1]).strip().split("\n\n", 1)
    return imports + "\n", products.replace("shipments", "parcels") + "\n"


def add_parcels(work: TeamWork) -> None:
    service = work.service
    for module in sorted((service / "src/orders/widgets").glob("*.py")):
        text = with_weight(module.name, parcels(module.read_text()))
        work.create(f"src/orders/parcels/{module.name}", text)
    api = (service / "src/orders/api.py").read_text()
    work.create(
        "src/orders/api.py",
        api.replace(
            "from .widgets.routes import router as widgets_router\n",
            "from .parcels.routes import router as parcels_router\n"
            "from .widgets.routes import router as widgets_router\n",
        )
        + "api_router.include_router(parcels_router)\n",
    )
    catalog = (service / "src/orders/catalog.py").read_text()
    imports, products = catalog_example(catalog)
    [current_imports] = [
        line for line in catalog.splitlines(keepends=True) if line.startswith("from")
    ]
    catalog = catalog.replace(current_imports, imports)
    work.create(
        "src/orders/catalog.py",
        catalog.replace("SERVICE_PRODUCTS: dict[str, Product] = {}\n", products),
    )
    work.create("tests/test_parcels.py", TEAM_TEST)
    for migration in (service / "migrations/versions").glob(f"{WIDGETS_MIGRATION}_*.py"):
        text = parcels(migration.read_text()).replace(WIDGETS_MIGRATION, PARCELS_MIGRATION)
        text = text.replace("Revises: (none)", f"Revises: {WIDGETS_MIGRATION}")
        description = '        sa.Column("description", sa.Text(), nullable=True),\n'
        weight = '        sa.Column("weight_grams", sa.Integer(), nullable=True),\n'
        text = text.replace(description, description + weight)
        text = re.sub(r"(down_revision: .*) = None", rf'\1 = "{WIDGETS_MIGRATION}"', text)
        work.create(f"migrations/versions/{PARCELS_MIGRATION}_create_parcels.py", text)


@pytest.fixture(params=variant_params(VARIANTS), scope="module")
def variant(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@dataclass
class Added:
    work: TeamWork
    changed: list[str]
    """The files the team changed (`git status` lines), new ones left out."""


@pytest.fixture(scope="module")
def added(
    variant: str, tmp_path_factory: pytest.TempPathFactory, base_answers: dict[str, str]
) -> Added:
    """A v1.0.0 service (tasks and all) with the parcels added, not yet committed."""
    root = tmp_path_factory.mktemp(f"added-{variant}")
    versions = build_versions(root / "template")
    work = TeamWork(generate(versions, root / "orders", {**base_answers, **VARIANTS[variant]}))
    add_parcels(work)
    service = GeneratedService(work.service)
    service.run("uv", "sync", "--locked", "--quiet")
    service.run("make", "openapi")
    return Added(work, [line for line in status(work.service) if not line.startswith("??")])


def checks_env(variant: str, request: pytest.FixtureRequest) -> dict[str, str]:
    if variant == "postgres":
        return {"TEST_DATABASE_URL": request.getfixturevalue("database_url")}
    return {}


def test_only_team_owned_or_new_files_change(added: Added) -> None:
    owned = [pattern.rstrip("/") + "*" for pattern in team_owned_paths()]
    assert added.changed
    assert [
        line
        for line in added.changed
        if not any(fnmatch.fnmatch(line[3:], pattern) for pattern in owned)
    ] == []


def test_the_added_resource_serves_and_survives_an_update(
    added: Added, variant: str, request: pytest.FixtureRequest
) -> None:
    service = GeneratedService(added.work.service)
    env = checks_env(variant, request)
    tests = service.assert_checks_pass(env=env)
    assert all(passed in tests for passed in TEAM_TESTS_PASSED), tests
    assert "/v1/parcels" in json.loads((service.path / "openapi.json").read_text())["paths"]
    added.work.commit("Parcels")
    team_files = {path: (service.path / path).read_text() for path in TEAM_OWNED_EDITS}

    update(service.path)
    assert yaml.safe_load((service.path / ".copier-answers.yml").read_text())["_commit"] == LATEST
    assert added.work.missing() == []
    assert {path: (service.path / path).read_text() for path in TEAM_OWNED_EDITS} == team_files
    service.run("uv", "sync", "--locked", "--quiet")
    tests = service.assert_checks_pass(env=env)
    assert all(passed in tests for passed in TEAM_TESTS_PASSED), tests
