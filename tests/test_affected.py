"""The workspace's tools/affected.py on a 40-member workspace (harness/affected_workspace.py): real
git histories, real uv.lock files written by `uv lock`, nothing mocked.

Each fixed change of the issue is a commit; the module, run in a worktree at that commit against
the one before, must name exactly the members the change can break, with the reason, and exactly
the services whose image it changed.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest

from harness.affected_workspace import (
    CHANGES,
    DATABASE_SERVICES,
    LIBRARIES,
    Change,
    History,
    build_history,
    publish,
    service_names,
    uv_lock,
)
from harness.commands import git, run

pytestmark = pytest.mark.xdist_group("affected")

ALL_MEMBERS = {*LIBRARIES, *service_names()}


@pytest.fixture(scope="module")
def history(tmp_path_factory: pytest.TempPathFactory) -> History:
    return build_history(tmp_path_factory.mktemp("affected"))


def affected(repo: Path, *args: str, check: bool = True) -> tuple[int, dict[str, Any] | str, str]:
    """(exit status, the JSON or text printed, the error output) of `python tools/affected.py`."""
    result = run([sys.executable, "tools/affected.py", *args], cwd=repo, check=check)
    output: dict[str, Any] | str = result.stdout
    if result.returncode == 0 and result.stdout.startswith("{"):
        output = json.loads(result.stdout)
    return result.returncode, output, result.stderr


def matrix(repo: Path, *args: str) -> dict[str, dict[str, Any]]:
    """The JSON matrix's entries by member."""
    _, output, _ = affected(repo, *args, "--format", "json")
    assert isinstance(output, dict)
    assert set(output) == {"include"}
    return {entry["member"]: entry for entry in output["include"]}


@pytest.fixture
def at_last_change(history: History, tmp_path: Path) -> Path:
    """A worktree at the last change, for changes the test makes in it (uncommitted)."""
    return history.checkout(CHANGES[-1], tmp_path / "worktree")


@pytest.mark.parametrize("change", CHANGES, ids=[change.name for change in CHANGES])
def test_each_change_affects_exactly_the_members_it_can_break(
    history: History, change: Change, tmp_path: Path
) -> None:
    worktree = history.checkout(change, tmp_path / "worktree")
    found = matrix(worktree, "--base", history.before(change))
    assert set(found) == change.affected
    assert {name for name, entry in found.items() if entry["deploy"]} == change.deployed
    if change.reason is not None:
        member, reason = change.reason
        assert found[member]["reasons"] == reason
    for name, entry in found.items():
        service = name.startswith("service-")
        assert entry["path"] == f"{'projects' if service else 'lib'}/{name}"
        assert entry["service"] is service
        assert entry["database"] is (name in DATABASE_SERVICES)
        assert entry["members"] == name


def test_the_text_lists_each_affected_member_with_its_reasons(
    history: History, tmp_path: Path
) -> None:
    change = next(change for change in CHANGES if "three services" in change.name)
    worktree = history.checkout(change, tmp_path / "worktree")
    _, text, _ = affected(worktree, "--base", history.before(change))
    assert isinstance(text, str)
    assert text.splitlines() == [
        "4 of 40 members affected",
        "  lib/mail: own files",
        "  projects/service-01, deployed: uses lib/mail",
        "  projects/service-02, deployed: uses lib/mail",
        "  projects/service-03, deployed: uses lib/mail",
    ]


def test_an_empty_base_is_a_full_run(history: History) -> None:
    found = matrix(history.repo, "--base", "")
    assert set(found) == ALL_MEMBERS
    assert {name for name, entry in found.items() if entry["deploy"]} == set(service_names())
    assert {entry["reasons"] for entry in found.values()} == {
        "a full run (no base to compare with)"
    }


def test_a_change_to_tests_only_checks_the_member_and_deploys_nothing(at_last_change: Path) -> None:
    """Uncommitted changes count: `make affected` before a commit says what it will run."""
    head = git("rev-parse", "HEAD", cwd=at_last_change).strip()
    (at_last_change / "projects/service-09/tests/test_more.py").write_text("def test(): pass\n")
    (at_last_change / "lib/base/tests/test_import.py").write_text("import base\n")
    found = matrix(at_last_change, "--base", head)
    assert {name: (entry["reasons"], entry["deploy"]) for name, entry in found.items()} == {
        "service-09": ("own tests", False),
        "base": ("own tests", False),
    }


def test_a_dev_tool_bump_in_the_lock_checks_every_member_and_deploys_nothing(
    history: History, at_last_change: Path
) -> None:
    """pytest is in the root's dev group only: in no image, but in every member's checks."""
    head = git("rev-parse", "HEAD", cwd=at_last_change).strip()
    publish(history.repo.parent / "index", "pytest", "8.4.0")
    uv_lock(at_last_change, "--upgrade-package", "pytest")
    found = matrix(at_last_change, "--base", head)
    assert set(found) == ALL_MEMBERS
    assert {entry["reasons"] for entry in found.values()} == {
        "the dev tools changed: pytest 8.3.0 → 8.4.0"
    }
    assert not any(entry["deploy"] for entry in found.values())


def test_the_uv_settings_of_the_root_change_every_image(at_last_change: Path) -> None:
    head = git("rev-parse", "HEAD", cwd=at_last_change).strip()
    pyproject = at_last_change / "pyproject.toml"
    pyproject.write_text(pyproject.read_text() + "\n[tool.uv.pip]\ngenerate-hashes = true\n")
    found = matrix(at_last_change, "--base", head)
    assert set(found) == ALL_MEMBERS
    assert {entry["reasons"] for entry in found.values()} == {"the uv workspace settings"}
    assert {name for name, entry in found.items() if entry["deploy"]} == set(service_names())


def test_the_root_ruff_config_checks_every_member_and_deploys_nothing(
    at_last_change: Path,
) -> None:
    """The workspace's ruff.toml and config/ rules lint every member but ship in no image."""
    head = git("rev-parse", "HEAD", cwd=at_last_change).strip()
    (at_last_change / "config").mkdir(exist_ok=True)
    (at_last_change / "config/ruff-base.toml").write_text("line-length = 99\n")
    found = matrix(at_last_change, "--base", head)
    assert set(found) == ALL_MEMBERS
    assert {entry["reasons"] for entry in found.values()} == {"root tool config"}
    assert not any(entry["deploy"] for entry in found.values())


def test_past_the_matrix_limit_members_are_checked_in_batches(history: History) -> None:
    _, output, _ = affected(history.repo, "--base", "", "--format", "json", "--max-jobs", "16")
    assert isinstance(output, dict)
    batches = output["include"]
    assert len(batches) == 16
    members = [member for batch in batches for member in batch["members"].split()]
    assert sorted(members) == sorted(ALL_MEMBERS)
    for batch in batches:
        holds_a_database = any(name in DATABASE_SERVICES for name in batch["members"].split())
        assert batch["database"] is holds_a_database


def test_deploys_are_one_entry_per_service_and_refused_past_the_limit(
    history: History,
) -> None:
    _, output, _ = affected(history.repo, "--base", "", "--deploys")
    assert isinstance(output, dict)
    assert sorted(entry["member"] for entry in output["include"]) == service_names()
    status, _, error = affected(
        history.repo, "--base", "", "--deploys", "--max-jobs", "20", check=False
    )
    assert status == 2
    assert "30 services to deploy, more than one matrix holds (20)" in error


def test_an_unknown_base_is_a_clear_error(history: History) -> None:
    status, output, error = affected(history.repo, "--base", "origin/nowhere", check=False)
    assert status == 2
    assert output == ""
    assert "the base 'origin/nowhere' is not a commit of this clone" in error
    assert "fetch-depth: 0" in error
    assert "run every member: make affected BASE= (--base '')" in error


def test_a_broken_lock_is_a_clear_error(at_last_change: Path) -> None:
    (at_last_change / "uv.lock").write_text("version = [\n")
    status, output, error = affected(at_last_change, "--base", "HEAD", check=False)
    assert (status, output) == (2, "")
    assert error.startswith("affected: uv.lock is not valid TOML")


def test_a_missing_lock_is_a_clear_error(at_last_change: Path) -> None:
    (at_last_change / "uv.lock").unlink()
    status, output, error = affected(at_last_change, "--base", "HEAD", check=False)
    assert (status, output) == (2, "")
    assert error == "affected: no uv.lock at the workspace's root: run `uv lock`\n"
