"""The release gate (.github/scripts/release_gate.py): no tag unless the rendered services pass."""

from __future__ import annotations

import sys
from pathlib import Path
from subprocess import CompletedProcess

from harness.commands import REPO_ROOT, git, run
from harness.template_repo import commit_all, current_version, snapshot
from tests.tools import load_workflow

GATE = REPO_ROOT / ".github" / "scripts" / "release_gate.py"


def gate(repository: Path, tag: str) -> CompletedProcess[str]:
    """The gate on one variant (the others differ only by answers the CI's jobs cover)."""
    args = [sys.executable, str(GATE), "--repository", str(repository), "--variant", "defaults"]
    return run([*args, "--tag", tag], env={"PYTHONPATH": str(REPO_ROOT)}, check=False, timeout=1800)


def test_a_variant_failing_its_checks_is_named_and_nothing_is_tagged(tmp_path: Path) -> None:
    repository = snapshot(tmp_path / "template", tag="v0.0.1")
    health = repository / "template" / "src" / "{{package_name}}" / "health.py.jinja"
    health.write_text(health.read_text() + "\nimport os\n")  # unused, and out of place: ruff fails
    commit_all(repository, "A release that breaks the service's lint")
    tag = current_version()
    result = gate(repository, tag)
    assert result.returncode != 0
    assert "release gate: defaults FAILED" in result.stderr
    assert "make check failed" in result.stderr
    assert "not tagged: the services rendered for defaults fail their checks" in result.stderr
    assert git("tag", "--list", tag, cwd=repository).strip() == ""


def test_a_green_release_is_tagged(tmp_path: Path) -> None:
    repository = snapshot(tmp_path / "template", tag="v0.0.1")
    tag = current_version()
    result = gate(repository, tag)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"tagged {tag}" in result.stdout
    assert git("tag", "--list", tag, cwd=repository).strip() == tag
    assert git("rev-parse", f"{tag}^{{commit}}", cwd=repository) == git(
        "rev-parse", "HEAD", cwd=repository
    )


def test_the_gate_refuses_a_version_without_a_changelog_entry(tmp_path: Path) -> None:
    repository = snapshot(tmp_path / "template", tag="v0.0.1")
    result = gate(repository, "v99.0.0")
    assert result.returncode != 0
    assert "CHANGELOG.md has no entry for v99.0.0" in result.stderr


def test_the_release_workflow_withdraws_the_tag_of_a_failed_release() -> None:
    release = load_workflow(REPO_ROOT / ".github" / "workflows" / "release.yml")
    untag = release["jobs"]["untag"]
    assert untag["needs"] == ["changelog", "ci", "core-api"]
    assert untag["if"] == "${{ failure() }}"
    script = "\n".join(step.get("run", "") for step in untag["steps"])
    assert 'gh api --method DELETE "repos/${GITHUB_REPOSITORY}/git/refs/tags/${TAG}"' in script


def test_make_release_runs_the_gate_with_the_tag() -> None:
    makefile = (REPO_ROOT / "Makefile").read_text()
    assert "python .github/scripts/release_gate.py --tag $(VERSION)" in makefile
