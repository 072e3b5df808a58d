"""The post-copy task: a ready repository when it can, a clear next step if not, never a failure."""

from __future__ import annotations

from pathlib import Path

from harness.generate import copy
from tests.services import GeneratedService


def test_copy_succeeds_when_the_private_index_is_unreachable(
    template_repo: Path, tmp_path: Path
) -> None:
    destination = tmp_path / "service"
    unreachable = (tmp_path / "no-index-here").as_uri()
    result = copy(template_repo, destination, {"core_index_url": unreachable})
    output = result.stdout + result.stderr
    assert "Could not lock the dependencies" in output
    assert "run `uv lock`" in output
    service = GeneratedService(destination)
    assert (destination / "pyproject.toml").is_file()
    assert not (destination / "uv.lock").exists()
    assert (
        service.run("git", "log", "--format=%s").stdout.strip()
        == "Generate from the service template"
    )


def test_skip_tasks_gives_a_plain_tree(
    template_repo: Path, tmp_path: Path, base_answers: dict[str, str]
) -> None:
    destination = tmp_path / "service"
    copy(template_repo, destination, base_answers, skip_tasks=True)
    assert (destination / "pyproject.toml").is_file()
    assert (destination / ".copier-answers.yml").is_file()
    assert not (destination / ".git").exists()
    assert not (destination / "uv.lock").exists()


def test_inside_an_existing_repository_nothing_is_committed(
    template_repo: Path, tmp_path: Path, base_answers: dict[str, str]
) -> None:
    monorepo = tmp_path / "monorepo"
    monorepo.mkdir()
    GeneratedService(monorepo).run("git", "init", "--quiet")
    result = copy(template_repo, monorepo / "projects" / "orders", base_answers)
    assert "review and commit it yourself" in result.stdout + result.stderr
    assert not (monorepo / "projects" / "orders" / ".git").exists()
    assert (monorepo / "projects" / "orders" / "uv.lock").is_file()
    status = GeneratedService(monorepo).run("git", "status", "--porcelain").stdout
    assert "?? projects/" in status
