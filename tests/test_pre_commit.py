"""pre-commit in a freshly generated service: passes offline, and refuses what a conflicted
`copier update` leaves behind (conflict markers, *.rej files, tracked or not).

The hooks run through the service's own locked pre-commit (`uv run --locked pre-commit`), with a
throwaway PRE_COMMIT_HOME, and with no network: every hook is local.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from subprocess import CompletedProcess

import pytest

from tests.services import GeneratedService, ServiceCache, variant_params

VARIANTS = {
    "defaults": {},
    "postgres": {"database": "postgres"},
}
# Built from parts, so that this file itself never holds a line the hook would refuse.
BEFORE, SEPARATOR, AFTER = "<" * 7 + " before updating", "=" * 7, ">" * 7 + " after updating"
CONFLICTED = "\n".join(
    [
        "first line",
        BEFORE,
        "the team's line",
        SEPARATOR,
        "the template's line",
        AFTER,
        "last line",
        "",
    ]
)


@pytest.fixture(params=variant_params(VARIANTS))
def service(request: pytest.FixtureRequest, services: ServiceCache) -> GeneratedService:
    return services.get(**VARIANTS[request.param])


Hooks = Callable[[], CompletedProcess[str]]


@pytest.fixture
def hooks(service: GeneratedService, tmp_path: Path) -> Iterator[Hooks]:
    """Runs `pre-commit run --all-files` in the service; checks the service is left as found."""

    def run_all() -> CompletedProcess[str]:
        return service.pre_commit(tmp_path / "pre-commit-home")

    assert service.run("git", "status", "--porcelain").stdout == "", "the service must start clean"
    yield run_all
    assert service.run("git", "status", "--porcelain").stdout == "", (
        "the test must leave the service clean"
    )


def test_pre_commit_passes_on_a_fresh_service(hooks: Hooks) -> None:
    result = hooks()
    assert result.returncode == 0, result.stdout + result.stderr
    for hook in (
        "ruff check",
        "ruff format",
        "mypy (strict)",
        "no merge conflict markers",
        "no untracked *.rej or *.team-edits files",
    ):
        assert any(
            line.startswith(hook) and line.endswith("Passed") for line in result.stdout.splitlines()
        ), hook


def test_conflict_markers_fail_the_hooks(service: GeneratedService, hooks: Hooks) -> None:
    readme = service.path / "README.md"
    original = readme.read_text()
    readme.write_text(original + CONFLICTED)
    try:
        result = hooks()
    finally:
        readme.write_text(original)
    assert result.returncode == 1
    assert "no merge conflict markers" in result.stdout
    assert "Failed" in result.stdout
    lines = len(original.splitlines())
    for offset, marker in ((2, BEFORE), (4, SEPARATOR), (6, AFTER)):
        assert f"README.md:{lines + offset}:{marker}" in result.stdout


def test_conflict_markers_in_python_fail_too(service: GeneratedService, hooks: Hooks) -> None:
    module = service.path / "src" / service.package_name / "__init__.py"
    original = module.read_text()
    module.write_text(original + "\n".join([BEFORE, "X = 1", SEPARATOR, "X = 2", AFTER, ""]))
    try:
        result = hooks()
    finally:
        module.write_text(original)
    assert result.returncode == 1
    assert f"src/{service.package_name}/__init__.py:" in result.stdout


@pytest.mark.parametrize("leftover", ["x.rej", "README.md.team-edits"])
def test_an_untracked_update_leftover_fails_the_hooks(
    service: GeneratedService, hooks: Hooks, leftover: str
) -> None:
    stray = service.path / leftover
    stray.write_text("--- a/README.md\n+++ b/README.md\n@@ -1 +1 @@\n-old\n+new\n")
    try:
        result = hooks()
    finally:
        stray.unlink()
    assert result.returncode == 1
    assert "no untracked *.rej or *.team-edits files" in result.stdout
    assert leftover in result.stdout


def test_a_staged_rej_file_fails_the_hooks(service: GeneratedService, hooks: Hooks) -> None:
    stray = service.path / "src" / "x.rej"
    stray.write_text("-old\n+new\n")
    service.run("git", "add", "--intent-to-add", "src/x.rej")
    try:
        result = hooks()
    finally:
        service.run("git", "rm", "--quiet", "--cached", "src/x.rej")
        stray.unlink()
    assert result.returncode == 1
    assert "- hook id: no-rej-files" in result.stdout
    assert "src/x.rej" in result.stdout
