"""The template repository's own lint and type check, so that `make test` catches their drift.

The same commands as `make lint` and the CI's lint job: `ruff check`, `ruff format --check` and
`mypy`, from the repository's root with its configuration (ruff.toml, pyproject.toml [tool.mypy]).
Where the repository needs what it gives its services, it uses the same source: the root ruff.toml
extends the services' ruff base settings, and the root pre-commit configuration is the services'
(a symbolic link to template/.pre-commit-config.yaml), which these tests hold to.
"""

from __future__ import annotations

import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from harness.commands import REPO_ROOT, run
from tests.services import GeneratedService
from tests.tools import dev_tool

LINTED = [
    "core/src",
    "core/tests",
    "hooks",
    "harness",
    "tests",
    "bench",
    "fleet",
    "workspace/tools",
]


def check(*command: str) -> None:
    result = run([dev_tool(command[0]), *command[1:]], cwd=REPO_ROOT, check=False)
    assert result.returncode == 0, f"`{' '.join(command)}` failed:\n{result.stdout}{result.stderr}"


def ruff_config() -> dict[str, Any]:
    return tomllib.loads((REPO_ROOT / "ruff.toml").read_text())


def mypy_config() -> dict[str, Any]:
    config: dict[str, Any] = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())
    return dict(config["tool"]["mypy"])


def test_ruff_check() -> None:
    check("ruff", "check", "--no-cache")


def test_ruff_format() -> None:
    check("ruff", "format", "--check", "--no-cache")


def test_mypy() -> None:
    check("mypy")


def test_ruff_lints_the_repository_with_the_services_base_settings() -> None:
    config = ruff_config()
    base = REPO_ROOT / config["extend"]
    assert base.parent == REPO_ROOT / "template" / "config"
    assert base.name.startswith("ruff-base.toml")
    # Ruff reads it as it stands: its Jinja, if any, must keep it valid TOML.
    assert tomllib.loads(base.read_text())["lint"]["select"]
    # The repository adds to the base and overrides none of its rules or limits.
    assert set(config) <= {"extend", "extend-exclude", "src", "lint"}
    assert set(config.get("lint", {})) <= {"per-file-ignores"}


@pytest.mark.parametrize("folder", LINTED)
def test_ruff_covers(folder: str) -> None:
    files = run([dev_tool("ruff"), "check", "--show-files"], cwd=REPO_ROOT).stdout.splitlines()
    assert any(Path(line).is_relative_to(REPO_ROOT / folder) for line in files), folder


def test_mypy_checks_every_folder_strictly() -> None:
    config = mypy_config()
    assert set(config["files"]) >= set(LINTED)
    assert config["strict"] is True
    assert not any(override.get("ignore_errors") for override in config.get("overrides", []))


def hooks(config: Path) -> list[dict[str, Any]]:
    document = yaml.safe_load(config.read_text())
    return [hook for repo in document["repos"] for hook in repo["hooks"]]


def test_pre_commit_config_is_valid() -> None:
    check("pre-commit", "validate-config", ".pre-commit-config.yaml")


def test_pre_commit_hooks_are_the_services_hooks(
    render: Callable[..., GeneratedService],
) -> None:
    """Same ids, entries and file selection as a generated service's hooks: drift fails here."""
    generated = hooks(render().path / ".pre-commit-config.yaml")
    assert generated, "generated services have no pre-commit hooks"
    assert hooks(REPO_ROOT / ".pre-commit-config.yaml") == generated


def test_pre_commit_hooks_are_local_and_run_the_locked_tools() -> None:
    document = yaml.safe_load((REPO_ROOT / ".pre-commit-config.yaml").read_text())
    assert [repo["repo"] for repo in document["repos"]] == ["local"]
    tools = [hook["entry"] for hook in hooks(REPO_ROOT / ".pre-commit-config.yaml")]
    assert any(entry.startswith("uv run --locked ruff check") for entry in tools)
    assert any(entry.startswith("uv run --locked ruff format") for entry in tools)


def test_no_test_module_imports_another() -> None:
    """Tests share helpers through helper modules (tests/tools.py, tests/services.py,
    tests/service_ci.py...), never by importing a test module, whose tests would run again
    wherever it is imported and whose changes would break files it does not name."""
    found = run(
        ["git", "grep", "-nE", r"^\s*(from|import) +(core\.)?tests\.test_", "--", "*.py"],
        cwd=REPO_ROOT,
        check=False,
    )
    assert found.stdout == ""
