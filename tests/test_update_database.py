"""An answer changed through `copier update`: an existing service switches on its database.

A service generated with `database: none` (tasks and all) gets the team's work, then
`copier update --data database=postgres` at the same release: Copier renders the release for the
old and for the new answers and applies the difference. The team's work survives, and the service
passes its own checks and tests against a real PostgreSQL server (the `database_url` fixture).
"""

from __future__ import annotations

from subprocess import CompletedProcess

import pytest
import yaml

from harness.commands import git
from harness.generate import update
from tests.services import GeneratedService
from tests.update_support import TeamWork, build_versions, generate, status

pytestmark = pytest.mark.xdist_group("update-database")

TEAM_TEST = """\
from orders.pricing import FLAT_FEE


def test_the_teams_own_code() -> None:
    assert FLAT_FEE == 5
"""
POSTGRES_FILES = ("alembic.ini", "compose.yaml", "migrations/env.py", "infra/terraform/main.tf")


@pytest.fixture(scope="module")
def switched(
    tmp_path_factory: pytest.TempPathFactory, base_answers: dict[str, str]
) -> tuple[TeamWork, CompletedProcess[str]]:
    root = tmp_path_factory.mktemp("switch")
    versions = build_versions(root / "template")
    service = generate(versions, root / "orders", base_answers)
    assert yaml.safe_load((service / ".copier-answers.yml").read_text())["database"] == "none"
    work = TeamWork(service)
    work.append("src/orders/api.py", "# The payments team's routers go above.\n")
    work.create("src/orders/pricing.py", '"""Prices, the team\'s own module."""\n\nFLAT_FEE = 5\n')
    work.create("tests/test_team.py", TEAM_TEST)
    work.append(".gitignore", "team-scratch/\n")
    work.append("README.md", "\n## Team notes\n\nOn call: the payments team.\n")
    work.commit()
    result = update(service, "--vcs-ref", "v1.0.0", data={"database": "postgres"})
    return work, result


def test_the_answer_changes_and_the_teams_work_survives(
    switched: tuple[TeamWork, CompletedProcess[str]],
) -> None:
    work, _ = switched
    recorded = yaml.safe_load((work.service / ".copier-answers.yml").read_text())
    assert (recorded["_commit"], recorded["database"]) == ("v1.0.0", "postgres")
    for path in POSTGRES_FILES:
        assert (work.service / path).is_file(), path
    assert work.missing() == []
    lines = status(work.service)
    assert not [line for line in lines if line.startswith("UU") or line.endswith(".rej")], lines
    assert git("log", "--format=%s", cwd=work.service).splitlines() == [
        "The team's own work",
        "Generate from the service template",
    ]


def test_the_switched_service_passes_its_checks_against_postgres(
    switched: tuple[TeamWork, CompletedProcess[str]], database_url: str
) -> None:
    work, _ = switched
    service = GeneratedService(work.service)
    service.run("uv", "lock", "--quiet")  # the update added dependencies: lock them, as told
    service.run("uv", "sync", "--locked", "--quiet")
    tests = service.assert_checks_pass(env={"TEST_DATABASE_URL": database_url})
    assert "tests/test_team.py::test_the_teams_own_code PASSED" in tests


def test_no_task_ran_during_the_switch(switched: tuple[TeamWork, CompletedProcess[str]]) -> None:
    _, result = switched
    said = result.stdout + result.stderr
    assert "Service ready in" not in said
    assert "review and commit it yourself" not in said
