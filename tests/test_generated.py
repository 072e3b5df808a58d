"""Generated services pass their own checks right after `copier copy`, with no edits.

Each variant is copied with its tasks (git init, `uv lock` against the local core index), installed
with `uv sync --locked`, and checked with the same commands its CI runs; then it is served (the
postgres variant on a fresh database of the test server, migrated as the deploy does).
"""

from __future__ import annotations

import functools
import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.backstage_catalog import read_entities
from tests.services import (
    GeneratedService,
    ServiceCache,
    assert_pytest_green,
    serving_service,
    variant_params,
)

VARIANTS = {
    "defaults": {},
    "python-3.12": {
        "python_version": "3.12",
        "service_name": "billing-events",
        "package_name": "billing",
    },
    "python-3.13": {"python_version": "3.13"},
    "postgres": {"database": "postgres"},
}
OPENAPI = Path(__file__).with_name("openapi.json")
"""The OpenAPI document the defaults (and postgres) variant served at template v1.0.0, byte for
byte: the core serving their widget routes itself must not change what clients generate code from.
A change to the API's routes or models updates it on purpose."""
WITHOUT_DATABASE = [name for name in VARIANTS if "database" not in VARIANTS[name]]
"""The variants whose test suites need no database server: tests/test_database.py runs the
postgres variant's suite, against one."""


@pytest.fixture(params=variant_params(VARIANTS))
def service(request: pytest.FixtureRequest, services: ServiceCache) -> GeneratedService:
    return services.get(**VARIANTS[request.param])


def test_post_copy_tasks_made_a_repository_with_a_lock(
    service: GeneratedService, core_index_url: str
) -> None:
    log = service.run("git", "log", "--format=%s").stdout.splitlines()
    assert log == ["Generate from the service template"]
    assert service.run("git", "status", "--porcelain").stdout == ""
    lock = (service.path / "uv.lock").read_text()
    assert f'source = {{ registry = "{core_index_url.removeprefix("file://")}' in lock


@pytest.mark.parametrize(
    "command",
    [
        ("uv", "run", "--locked", "ruff", "check"),
        ("uv", "run", "--locked", "ruff", "format", "--check"),
        ("uv", "run", "--locked", "mypy"),
    ],
    ids=["ruff-check", "ruff-format", "mypy"],
)
def test_static_check_passes(service: GeneratedService, command: tuple[str, ...]) -> None:
    service.run(*command)


@pytest.mark.parametrize("variant", variant_params(WITHOUT_DATABASE))
def test_test_suite_passes(variant: str, services: ServiceCache) -> None:
    service = services.get(**VARIANTS[variant])
    output = service.run("uv", "run", "--locked", "pytest", "-v", "-p", "no:cacheprovider").stdout
    assert_pytest_green(output)
    modules = [path.relative_to(service.path) for path in service.path.glob("tests/test_*.py")]
    assert modules
    assert [module for module in modules if f"{module}::" not in output] == [], output


@pytest.mark.parametrize("variant", ["defaults", "postgres"])
def test_the_openapi_document_is_byte_identical(
    variant: str, services: ServiceCache, tmp_path: Path
) -> None:
    service = services.get(**VARIANTS[variant])
    served = tmp_path / "openapi.json"
    script = (
        "import sys\n"
        "from pathlib import Path\n"
        "from fastapi.testclient import TestClient\n"
        f"from {service.package_name}.app import create_app\n"
        "Path(sys.argv[1]).write_bytes(TestClient(create_app()).get('/openapi.json').content)"
    )
    service.run("uv", "run", "--locked", "python", "-c", script, str(served))
    assert served.read_bytes() == OPENAPI.read_bytes()


@pytest.fixture
def served(
    service: GeneratedService, request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[str]:
    database_url = functools.partial(request.getfixturevalue, "database_url")
    with serving_service(service, log=tmp_path / "service.log", database_url=database_url) as url:
        yield url


def get_json(url: str, headers: dict[str, str] | None = None) -> tuple[int, str, dict[str, object]]:
    request = urllib.request.Request(url, headers=headers or {})  # noqa: S310 - loopback
    try:
        with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310 - loopback
            return response.status, response.headers["Content-Type"], json.load(response)
    except urllib.error.HTTPError as error:
        return error.code, error.headers["Content-Type"], json.load(error)


def test_service_serves_json_api(service: GeneratedService, served: str) -> None:
    status, content_type, body = get_json(f"{served}/livez")
    assert (status, content_type) == (200, "application/vnd.api+json")

    status, content_type, body = get_json(f"{served}/v1/widgets")
    assert (status, content_type) == (401, "application/vnd.api+json")
    assert body["errors"]

    token = service.account_token()
    status, content_type, body = get_json(
        f"{served}/v1/widgets", {"Authorization": f"Bearer {token}"}
    )
    assert (status, content_type) == (200, "application/vnd.api+json")
    assert body["data"] == []
    assert body["meta"]["total"] == 0  # type: ignore[index]


def test_the_api_entity_s_definition_is_the_served_openapi_document(
    service: GeneratedService, served: str
) -> None:
    """catalog-info.yaml's API entity reads openapi.json: the document the service serves."""
    (api,) = [
        entity
        for entity in read_entities(service.path / "catalog-info.yaml")
        if entity["kind"] == "API"
    ]
    status, _, document = get_json(f"{served}/openapi.json")
    assert status == 200
    assert json.loads(api["spec"]["definition"]) == document
