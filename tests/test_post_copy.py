"""The post-copy task: a ready repository when it can, a clear next step or WARNING if not."""

from __future__ import annotations

import shutil
from pathlib import Path

from harness.generate import copy
from tests.services import GeneratedService, ServiceCache


def test_copy_succeeds_when_the_private_index_is_unreachable(
    template_repo: Path, tmp_path: Path
) -> None:
    destination = tmp_path / "service"
    unreachable = (tmp_path / "no-index-here").as_uri()
    result = copy(template_repo, destination, {"core_index_url": unreachable})
    output = result.stdout + result.stderr
    assert "Could not lock the dependencies" in output
    assert "run `uv lock`" in output
    assert "`make try` builds the core into a local index" in " ".join(output.split())
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
    warning = "WARNING: the service is inside the git repository"
    assert warning in result.stderr
    assert "GitHub runs only the workflows of" in result.stderr
    assert "projects/orders/.github/workflows" in result.stderr


def test_stray_files_stay_out_of_the_first_commit_and_placeholders_are_named(
    template_repo: Path, tmp_path: Path, base_answers: dict[str, str]
) -> None:
    destination = tmp_path / "service"
    (destination / "old").mkdir(parents=True)
    (destination / "notes.txt").write_text("mine\n")
    (destination / "old" / "data.csv").write_text("a,b\n")
    result = copy(template_repo, destination, base_answers)
    assert (
        "WARNING: the folder already held files the template does not generate: notes.txt, "
        "old/data.csv." in result.stderr
    )
    for question in ("aws_account_id", "owner_team"):
        assert f"WARNING: {question} is the template's placeholder" in result.stderr
        assert f"make reconfigure SET={question}=VALUE" in result.stderr
    service = GeneratedService(destination)
    committed = service.run("git", "ls-files").stdout.splitlines()
    assert {"pyproject.toml", "uv.lock", ".copier-answers.yml"} <= set(committed)
    assert not {"notes.txt", "old/data.csv"} & set(committed)
    assert (destination / "notes.txt").read_text() == "mine\n"


def test_real_answers_get_no_placeholder_warning(
    template_repo: Path, tmp_path: Path, base_answers: dict[str, str]
) -> None:
    answers = {**base_answers, "aws_account_id": "210987654321", "owner_team": "payments"}
    result = copy(template_repo, tmp_path / "service", answers, env={"UV_OFFLINE": "1"})
    assert "WARNING" not in result.stderr
    assert (tmp_path / "service" / "uv.lock").is_file()


def test_the_lock_from_the_cache_is_the_lock_from_the_indexes(
    services: ServiceCache, tmp_path: Path
) -> None:
    """The post-copy task locks offline first: it must give what an online `uv lock` gives."""
    service = services.get()
    scratch = tmp_path / "service"
    shutil.copytree(service.path, scratch, ignore=shutil.ignore_patterns(".venv", ".git"))
    (scratch / "uv.lock").unlink()
    locked = GeneratedService(scratch)
    locked.run("uv", "lock", "--offline")
    offline = (scratch / "uv.lock").read_text()
    (scratch / "uv.lock").unlink()
    locked.run("uv", "lock")
    assert (scratch / "uv.lock").read_text() == offline
