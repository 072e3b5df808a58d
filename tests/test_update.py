"""`copier update` of generated services: the team's work survives every scenario.

Template versions v1.0.0 (the working tree) to v3.0.0 are built by scripted changes
(tests/update_support.py says which). A service is generated once from v1.0.0 with its tasks (git
init, `uv lock`, first commit); each scenario works on a copy of it: the team's edits, committed,
then the real `copier update` from inside the service, as `make update` runs it. Every scenario
counts the lines the team wrote and finds each of them again in the tree afterwards.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable
from pathlib import Path
from subprocess import CompletedProcess

import pathspec
import pytest
import yaml

from harness.commands import REPO_ROOT, git, run
from harness.generate import copy, update
from harness.template_repo import commit_all
from tests.services import GeneratedService
from tests.update_support import (
    LATEST,
    NEW_TITLE,
    TeamWork,
    build_versions,
    clone_service,
    generate,
    status,
    tree,
)

MIGRATE = REPO_ROOT / "hooks" / "migrations" / "migrate.py"
TEAM_TITLE = "# Orders, run by the payments team"
TEAM_RUNBOOK = "# Orders runbook\n\nPage the payments on-call first.\n"
TEAM_ENV = "# The payments team's feature flag.\nTEAM_FEATURE_FLAG=on\n"
POST_COPY_OUTPUT = ("Service ready in", "review and commit it yourself", "Could not lock")


@pytest.fixture(scope="session")
def versions(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_versions(tmp_path_factory.mktemp("template-versions") / "repo")


@pytest.fixture(scope="session")
def answers(base_answers: dict[str, str]) -> dict[str, str]:
    """A non-default answer to the question v2.0.0 renames, to see it carried over."""
    return {**base_answers, "owner_team": "payments"}


@pytest.fixture(scope="session")
def v1_service(
    tmp_path_factory: pytest.TempPathFactory, versions: Path, answers: dict[str, str]
) -> Path:
    """Generated from v1.0.0 with its tasks; never changed: scenarios work on copies."""
    return generate(versions, tmp_path_factory.mktemp("v1") / "orders", answers)


def output(result: CompletedProcess[str]) -> str:
    return result.stdout + result.stderr


def pre_commit(service: Path, tmp_path: Path) -> CompletedProcess[str]:
    """The service's own hooks on every file, through its locked pre-commit, offline.

    mypy is skipped: the conflicts here are in Markdown, and type-checking an updated service is
    test_the_updated_service_passes_its_own_checks's job (it costs most of the hooks' time).
    """
    generated = GeneratedService(service)
    generated.run("uv", "sync", "--locked", "--quiet")
    return generated.pre_commit(tmp_path / "pre-commit-home", SKIP="mypy")


def team_edits(service: Path) -> TeamWork:
    """The team's work on a v1.0.0 service, against what v1.1.0 changes (update_support)."""
    work = TeamWork(service)
    work.replace_line("README.md", 0, TEAM_TITLE)  # v1.1.0 rewrites the same line
    work.append(".gitignore", "team-scratch/\n")  # v1.1.0 adds a line at the other end
    work.append(".env.example", TEAM_ENV)  # v1.1.0 deletes the file
    work.delete(".github/dependabot.yml")  # v1.1.0 changes it
    work.create("docs/runbook.md", TEAM_RUNBOOK)  # v1.1.0 adds its own
    work.append("src/orders/api.py", "# The payments team's routers go above.\n")  # team-owned
    work.append("ruff.toml", "# The payments team's lint settings.\n")  # team-owned seed
    work.create("local.mk", ".PHONY: team-report\nteam-report:\n\t@echo payments\n")
    work.create("src/orders/pricing.py", '"""Prices, the team\'s own module."""\n\nFLAT_FEE = 5\n')
    work.commit()
    return work


class Updated:
    """A service after its team's edits and one `copier update`."""

    def __init__(self, work: TeamWork, result: CompletedProcess[str], before: str) -> None:
        self.work = work
        self.path = work.service
        self.result = result
        self.before = before  # the commit the update started from

    def text(self, path: str) -> str:
        return (self.path / path).read_text()

    def committed(self, path: str) -> str:
        return git("show", f"{self.before}:{path}", cwd=self.path)


def edit_and_update(v1_service: Path, destination: Path, *options: str) -> Updated:
    """The team's edits on a copy of the v1.0.0 service, then an update to v1.1.0."""
    service = clone_service(v1_service, destination)
    work = team_edits(service)
    before = git("rev-parse", "HEAD", cwd=service).strip()
    return Updated(work, update(service, "--vcs-ref", "v1.1.0", *options), before)


@pytest.fixture(scope="module")
def inline(tmp_path_factory: pytest.TempPathFactory, v1_service: Path) -> Updated:
    return edit_and_update(v1_service, tmp_path_factory.mktemp("inline") / "orders")


@pytest.fixture(scope="module")
def rej(tmp_path_factory: pytest.TempPathFactory, v1_service: Path) -> Updated:
    destination = tmp_path_factory.mktemp("rej") / "orders"
    return edit_and_update(v1_service, destination, "--conflict", "rej")


edits = pytest.mark.xdist_group("update-edits")


@edits
@pytest.mark.parametrize("mode", ["inline", "rej"])
def test_every_line_the_team_wrote_survives(mode: str, request: pytest.FixtureRequest) -> None:
    updated: Updated = request.getfixturevalue(mode)
    assert len(updated.work.lines) >= 12
    assert updated.work.missing() == []


@edits
def test_edits_away_from_the_templates_changes_merge_cleanly(inline: Updated) -> None:
    gitignore = inline.text(".gitignore")
    assert gitignore.startswith("# Kept current by the service template.\n")
    assert gitignore.endswith("team-scratch/\n")
    assert " M .gitignore" in status(inline.path)
    assert "<<<<<<< before updating" not in gitignore.splitlines()


@edits
def test_overlapping_edits_become_inline_conflicts(inline: Updated) -> None:
    readme = inline.text("README.md").splitlines()
    block = readme[: readme.index(">>>>>>> after updating") + 1]
    assert block == [
        "<<<<<<< before updating",
        TEAM_TITLE,
        "=======",
        NEW_TITLE.replace("{{ service_name }}", "orders"),
        ">>>>>>> after updating",
    ]
    assert "UU README.md" in status(inline.path)


@edits
def test_overlapping_edits_as_rej_files(rej: Updated) -> None:
    readme = rej.text("README.md")
    assert readme.startswith(NEW_TITLE.replace("{{ service_name }}", "orders") + "\n")
    assert "<<<<<<< before updating" not in readme.splitlines()
    rejected = rej.text("README.md.rej")
    assert f"+{TEAM_TITLE}" in rejected.splitlines()
    assert "?? README.md.rej" in status(rej.path)


@edits
@pytest.mark.parametrize("mode", ["inline", "rej"])
def test_the_pre_commit_hooks_catch_what_conflicts_leave(
    mode: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    updated: Updated = request.getfixturevalue(mode)
    result = pre_commit(updated.path, tmp_path)
    assert result.returncode != 0, output(result)
    if mode == "inline":
        assert re.search(r"no merge conflict markers\.+Failed", result.stdout), result.stdout
        assert "README.md:1:<<<<<<< before updating" in result.stdout
        assert "docs/runbook.md:1:<<<<<<< before updating" in result.stdout
    else:
        leftovers_hook = r"no untracked \*\.rej or \*\.team-edits files\.+Failed"
        assert re.search(leftovers_hook, result.stdout), result.stdout
        assert "README.md.rej" in result.stdout
        assert "docs/runbook.md.rej" in result.stdout


@edits
def test_a_file_the_team_deleted_stays_deleted(inline: Updated, rej: Updated) -> None:
    for updated in (inline, rej):
        assert not (updated.path / ".github/dependabot.yml").exists()
        assert not any("dependabot" in line for line in status(updated.path))


@edits
def test_a_file_added_on_both_sides_keeps_both(inline: Updated) -> None:
    runbook = inline.text("docs/runbook.md")
    assert runbook.startswith("<<<<<<< before updating\n" + TEAM_RUNBOOK + "=======\n")
    assert "The template's first runbook entry." in runbook
    assert "UU docs/runbook.md" in status(inline.path)


@edits
@pytest.mark.parametrize("mode", ["inline", "rej"])
def test_the_loss_guard_keeps_a_deleted_file_the_team_edited(
    mode: str, request: pytest.FixtureRequest
) -> None:
    updated: Updated = request.getfixturevalue(mode)
    assert not (updated.path / ".env.example").exists()
    kept = updated.text(".env.example.team-edits")
    assert kept == updated.committed(".env.example")
    assert kept.endswith(TEAM_ENV)
    lines = status(updated.path)
    assert " D .env.example" in lines
    assert "?? .env.example.team-edits" in lines
    assert "kept: .env.example.team-edits" in output(updated.result)
    # The file the template deleted and the team never touched just goes, as Copier does it.
    assert " D .yamllint.yaml" in lines
    assert not (updated.path / ".yamllint.yaml.team-edits").exists()
    # In rej mode Copier leaves a .rej for the file it deleted; the kept file replaces it.
    assert not (updated.path / ".env.example.rej").exists()


@edits
def test_team_owned_files_are_left_alone(inline: Updated, rej: Updated) -> None:
    for updated in (inline, rej):
        for path in ("ruff.toml", "local.mk", "src/orders/api.py", "src/orders/pricing.py"):
            assert updated.text(path) == updated.committed(path), path
        assert "Seeded by template v1.1.0" not in updated.text("ruff.toml")
        assert not list(updated.path.rglob("*.py.rej"))


@edits
def test_a_new_question_takes_its_default(inline: Updated) -> None:
    recorded = yaml.safe_load(inline.text(".copier-answers.yml"))
    assert recorded["_commit"] == "v1.1.0"
    assert recorded["log_format"] == "json"
    assert inline.text("config/logging.toml") == 'format = "json"\n'


@edits
def test_tasks_do_not_run_during_an_update(inline: Updated) -> None:
    log = git("log", "--format=%s", cwd=inline.path).splitlines()
    assert log == ["The team's own work", "Generate from the service template"]
    for message in POST_COPY_OUTPUT:
        assert message not in output(inline.result)


@edits
def test_an_untouched_service_updated_equals_a_fresh_copy(
    v1_service: Path, versions: Path, answers: dict[str, str], tmp_path: Path
) -> None:
    service = clone_service(v1_service, tmp_path / "updated")
    source = yaml.safe_load((service / ".copier-answers.yml").read_text())["_src_path"]
    assert Path(source).is_absolute()
    result = update(service)  # from inside the service, to the newest release
    fresh = tmp_path / "fresh"
    renamed = {
        ("owning_team" if key == "owner_team" else key): value for key, value in answers.items()
    }
    copy(versions, fresh, renamed, vcs_ref=LATEST, skip_tasks=True)

    updated_files, fresh_files = tree(service), tree(fresh)
    updated_files.pop("uv.lock")  # made by the post-copy task, not rendered
    # A team-owned seed is written once: the update kept v1.0.0's, a fresh copy has v3.0.0's.
    assert b"Seeded by template v1.1.0" in fresh_files.pop("ruff.toml")
    assert updated_files.pop("ruff.toml") == git("show", "HEAD:ruff.toml", cwd=service).encode()
    assert updated_files.keys() == fresh_files.keys()
    assert [path for path in updated_files if updated_files[path] != fresh_files[path]] == []
    assert yaml.safe_load(updated_files[".copier-answers.yml"])["owning_team"] == "payments"
    for message in POST_COPY_OUTPUT:
        assert message not in output(result)


@edits
def test_a_dirty_working_tree_is_refused_and_nothing_changes(
    v1_service: Path, tmp_path: Path
) -> None:
    service = clone_service(v1_service, tmp_path / "orders")
    (service / "README.md").write_text("Work in progress\n")
    (service / "notes.txt").write_text("not committed yet\n")
    before, before_status = tree(service), status(service)
    result = update(service, check=False)
    assert result.returncode != 0
    assert "Destination repository is dirty; cannot continue." in result.stderr
    assert "commit or stash your local changes" in result.stderr
    assert tree(service) == before
    assert status(service) == before_status


# Migrations: v1.0.0 -> v3.0.0 crosses v2.0.0's rename and v3.0.0's move.

migrations = pytest.mark.xdist_group("update-migrations")
WIDGETS = "src/orders/widgets"
TEAM_CONSTANT = "\n\nMAX_WIDGETS_PER_ACCOUNT = 1000\n"
TEAM_TEST = """\
from orders.pricing import FLAT_FEE
from orders.widgets.serialization import MAX_WIDGETS_PER_ACCOUNT


def test_the_teams_own_code() -> None:
    assert FLAT_FEE * MAX_WIDGETS_PER_ACCOUNT == 5000
"""


@pytest.fixture(scope="module")
def migrated(tmp_path_factory: pytest.TempPathFactory, v1_service: Path) -> Updated:
    """Team edits that merge cleanly, then an update across two migrations to the newest release."""
    service = clone_service(v1_service, tmp_path_factory.mktemp("migrated") / "orders")
    work = TeamWork(service)
    work.append("src/orders/widgets/schemas.py", TEAM_CONSTANT)  # v3.0.0 moves the file
    work.append(".env.example", TEAM_ENV)  # v1.1.0 deletes the file
    work.append(".gitignore", "team-scratch/\n")
    work.append("src/orders/api.py", "# The payments team's routers go above.\n")
    work.create("src/orders/pricing.py", '"""Prices, the team\'s own module."""\n\nFLAT_FEE = 5\n')
    work.create("tests/test_team.py", TEAM_TEST)
    work.commit()
    before = git("rev-parse", "HEAD", cwd=service).strip()
    return Updated(work, update(service), before)


@migrations
def test_migrations_run_across_skipped_versions(migrated: Updated) -> None:
    said = output(migrated.result)
    assert "answer 'owner_team' renamed to 'owning_team' (value 'payments' kept)" in said
    assert "src/orders/widgets/schemas.py moved to src/orders/widgets/serialization.py" in said
    recorded = yaml.safe_load(migrated.text(".copier-answers.yml"))
    assert recorded["_commit"] == LATEST
    assert recorded["owning_team"] == "payments"
    assert "owner_team" not in recorded
    assert "Owned by **payments**" in migrated.text("README.md")


@migrations
def test_a_moved_file_takes_the_teams_edits_along(migrated: Updated) -> None:
    moved = migrated.text("src/orders/widgets/serialization.py")
    assert moved.endswith(TEAM_CONSTANT)
    assert "class WidgetAttributes" in moved
    assert not (migrated.path / "src/orders/widgets/schemas.py").exists()
    assert not list(migrated.path.rglob("schemas.py*"))
    assert "from .serialization import" in migrated.text("src/orders/widgets/routes.py")
    lines = status(migrated.path)
    assert "D  src/orders/widgets/schemas.py" in lines
    assert "?? src/orders/widgets/serialization.py" in lines
    assert migrated.work.missing() == []


@migrations
def test_migration_steps_are_idempotent(migrated: Updated, tmp_path: Path) -> None:
    """Run again on the updated service, every step finds nothing left to do."""
    service = clone_service(migrated.path, tmp_path / "orders")
    before, before_status = tree(service), status(service)
    for stage, *step in (
        ["before", "rename-answer", "owner_team", "owning_team"],
        [
            "after",
            "move-path",
            "src/orders/widgets/schemas.py",
            "src/orders/widgets/serialization.py",
        ],
        ["after", "keep-team-edits", '--team-owned-json=["ruff.toml", "src/*/api.py"]'],
    ):
        result = migrate(service, stage, *step)
        assert result.returncode == 0, output(result)
        assert tree(service) == before, step
        assert status(service) == before_status, step


@migrations
def test_a_second_update_changes_nothing(migrated: Updated, tmp_path: Path) -> None:
    service = clone_service(migrated.path, tmp_path / "orders")
    commit_all(service, "Update from the service template to v3.0.0")
    head, files = git("rev-parse", "HEAD", cwd=service), tree(service)
    result = update(service)
    assert status(service) == []
    assert tree(service) == files
    assert git("rev-parse", "HEAD", cwd=service) == head
    assert "[template migration]" not in output(result)


@migrations
def test_the_updated_service_passes_its_own_checks(migrated: Updated) -> None:
    """As tests/test_generated.py checks a fresh service: lint, types, and its tests."""
    service = GeneratedService(migrated.path)
    service.run("uv", "sync", "--locked", "--quiet")
    tests = service.assert_checks_pass()
    assert "tests/test_team.py::test_the_teams_own_code PASSED" in tests


@migrations
def test_a_file_the_team_deleted_stays_deleted_when_the_template_moves_it(
    v1_service: Path, tmp_path: Path
) -> None:
    service = clone_service(v1_service, tmp_path / "orders")
    TeamWork(service).delete("src/orders/widgets/schemas.py")
    commit_all(service, "The team's own schemas live elsewhere")
    result = update(service)
    assert not (service / "src/orders/widgets/serialization.py").exists()
    assert "src/orders/widgets/serialization.py not created" in output(result)
    moved = ("widgets/schemas.py", "widgets/serialization.py")
    assert not [line for line in status(service) if any(path in line for path in moved)]


def migrate(service: Path, stage: str, *step: str) -> CompletedProcess[str]:
    """A migration step run by hand, as Copier runs it (STAGE set), in `service`."""
    return run(
        [sys.executable, str(MIGRATE), *step], cwd=service, env={"STAGE": stage}, check=False
    )


@migrations
def test_the_loss_guard_restores_a_team_owned_file_an_update_removed(
    v1_service: Path, tmp_path: Path
) -> None:
    service = clone_service(v1_service, tmp_path / "orders")
    (service / "ruff.toml").unlink()  # as Copier removes a file a new release no longer ships
    result = migrate(service, "after", "keep-team-edits", '--team-owned-json=["ruff.toml"]')
    assert result.returncode == 0, output(result)
    assert "ruff.toml restored: it is team-owned" in result.stdout
    assert status(service) == []


@pytest.mark.parametrize(
    ("recorded", "expected", "said"),
    [
        ({"owner_team": "payments"}, {"owning_team": "payments"}, "renamed to 'owning_team'"),
        ({"owning_team": "payments"}, {"owning_team": "payments"}, ""),
        (
            {"owner_team": "payments", "owning_team": "billing"},
            {"owning_team": "billing"},
            "dropped: 'owning_team' is already recorded",
        ),
    ],
    ids=["renamed", "already-renamed", "both-recorded"],
)
def test_rename_answer(
    recorded: dict[str, str], expected: dict[str, str], said: str, tmp_path: Path
) -> None:
    answers = tmp_path / ".copier-answers.yml"
    header = "# Changes here will be overwritten by Copier; do not edit by hand.\n"
    answers.write_text(header + yaml.safe_dump({"_commit": "v1.0.0", **recorded}))
    for _ in range(2):  # idempotent: the second run finds nothing to do, and says nothing
        result = migrate(tmp_path, "before", "rename-answer", "owner_team", "owning_team")
        assert result.returncode == 0, output(result)
        assert yaml.safe_load(answers.read_text()) == {"_commit": "v1.0.0", **expected}
        assert answers.read_text().startswith(header)
        if said:
            assert said in result.stdout
        else:
            assert result.stdout == ""
        said = ""


def test_a_step_registered_in_the_wrong_stage_says_so(tmp_path: Path) -> None:
    result = migrate(tmp_path, "after", "rename-answer", "owner_team", "owning_team")
    assert result.returncode == 1
    assert "rename-answer runs in the 'before' stage of a migration, not 'after'" in result.stderr


# Ownership: declared once, complete, and what Copier and the README use.


def copier_config() -> dict[str, object]:
    config: dict[str, object] = yaml.safe_load((REPO_ROOT / "copier.yml").read_text())
    return config


def owned(name: str) -> list[str]:
    question = copier_config()[name]
    assert isinstance(question, dict)
    paths: list[str] = question["default"]
    return paths


def test_skip_if_exists_is_the_team_owned_list() -> None:
    config = copier_config()
    assert config["_skip_if_exists"] == owned("team_owned_paths")
    assert not any("{" in pattern for pattern in owned("team_owned_paths"))


@pytest.mark.parametrize(
    "answers",
    [{}, {"database": "postgres"}, {"database": "postgres", "workloads": "[api, worker, jobs]"}],
    ids=["none", "postgres", "background"],
)
def test_every_generated_path_has_an_owner(
    answers: dict[str, str], render: Callable[..., GeneratedService]
) -> None:
    service = render(**answers)
    team = pathspec.PathSpec.from_lines("gitignore", owned("team_owned_paths"))
    template = pathspec.PathSpec.from_lines("gitignore", owned("template_owned_paths"))
    files = [str(path.relative_to(service.path)) for path in service.files()]
    assert [
        path for path in files if not (team.match_file(path) or template.match_file(path))
    ] == []
    assert "src/orders/api.py" in [path for path in files if team.match_file(path)]
    readme = (service.path / "README.md").read_text()
    assert (
        "`ruff.toml`, `local.mk`, `src/orders/api.py`, `src/orders/catalog.py`, "
        "`src/orders/handler.py`, `src/orders/jobs.py`, `tests/test_handler.py`, "
        "`infra/terraform/jobs.auto.tfvars.json`, `migrations/versions/`, `openapi.json`." in readme
    )
    assert "`pyproject.toml`, `src/orders/`, `tests/`." in readme


def test_make_update_uses_the_copier_the_template_is_tested_with(
    render: Callable[..., GeneratedService],
) -> None:
    pinned = re.search(r'"copier==([^"]+)"', (REPO_ROOT / "pyproject.toml").read_text())
    assert pinned
    makefile = (render().path / "Makefile").read_text()
    assert f"COPIER_VERSION := {pinned.group(1)}\n" in makefile
    assert "COPIER := uvx --from copier==$(COPIER_VERSION) copier\n" in makefile
    assert "$(COPIER) update --trust" in makefile


def test_make_update_refuses_a_relative_template_path(
    render: Callable[..., GeneratedService],
) -> None:
    """Copier resolves a relative `_src_path` from the service's folder and fails confusingly."""
    service = render()
    answers = service.path / ".copier-answers.yml"
    answers.write_text(
        re.sub(r"(?m)^_src_path: .*$", "_src_path: ../template", answers.read_text())
    )
    result = service.run("make", "update", check=False)
    assert result.returncode != 0
    assert "_src_path in .copier-answers.yml must be the template's URL or an" in result.stdout
    assert "uvx" not in result.stdout
    answers.write_text(answers.read_text().replace("../template", "/srv/template"))
    assert "uvx --from copier==" in service.run("make", "-n", "update").stdout


def test_the_post_copy_task_runs_on_copy_only() -> None:
    config = copier_config()
    tasks = config["_tasks"]
    assert isinstance(tasks, list)
    assert all(task["when"] == "{{ _copier_operation == 'copy' }}" for task in tasks)
    # 9.6.0 brought _copier_operation; 9.19.0 `ask: false`, which the platform settings use.
    assert config["_min_copier_version"] == "9.19.0"


@edits
def test_make_reconfigure_changes_an_answer_and_keeps_the_teams_lines(
    v1_service: Path, tmp_path: Path
) -> None:
    """`make reconfigure` re-renders the same release with a new answer (`--vcs-ref=:current:`);
    run again with nothing new to change, it says so."""
    service = clone_service(v1_service, tmp_path / "orders")
    work = TeamWork(service)
    work.append("src/orders/api.py", "# The payments team's routers go above.\n")  # team-owned
    work.append("README.md", "\nThe payments team's on-call notes.\n")  # template-owned
    work.commit()
    generated = GeneratedService(service)
    copier = f"COPIER={sys.executable} -m copier"  # the Copier `make` would fetch with uvx
    change = "SET=owner_team=billing-core description=Orders, refunds and their #history"
    result = generated.run("make", "reconfigure", change, copier)
    assert " M README.md" in result.stdout  # what changed, listed
    assert "resolve" not in (result.stdout + result.stderr).lower(), "nothing is left to resolve"
    answers = yaml.safe_load((service / ".copier-answers.yml").read_text())
    assert (answers["owner_team"], answers["_commit"]) == ("billing-core", "v1.0.0")
    assert answers["description"] == "Orders, refunds and their #history"
    readme = (service / "README.md").read_text()
    assert "Owned by **billing-core**" in readme
    assert "The payments team's on-call notes." in readme
    assert "routers go above" in (service / "src/orders/api.py").read_text()
    work.commit("Reconfigure")
    again = generated.run("make", "reconfigure", "SET=owner_team=billing-core", copier)
    assert "Nothing changed." in again.stdout
    assert "resolve" not in (again.stdout + again.stderr).lower()

    # The team rewrites the line the answer renders; a new answer then conflicts there.
    readme_path = service / "README.md"
    readme_path.write_text(readme_path.read_text().replace("**billing-core**", "**billing**"))
    work.commit("The team's own owner line")
    conflicted = generated.run("make", "reconfigure", "SET=owner_team=payments", copier)
    assert "UU README.md" in conflicted.stdout
    assert "Left to resolve (README: Updating from the template):\n  README.md\n" in (
        conflicted.stdout
    )


def test_make_update_refuses_a_version_the_template_never_released(
    render: Callable[..., GeneratedService], template_version: str
) -> None:
    """Copier's own answer is a traceback ending in `ValueError: Unknown revision`."""
    result = render().run("make", "update", "VERSION=v5.0.0", check=False)
    assert result.returncode == 2
    assert (
        f"VERSION=v5.0.0 is not a release of the template; its newest releases: {template_version}"
        in result.stdout
    )
    assert "Traceback" not in result.stdout + result.stderr


def test_an_update_keeps_the_recorded_platform_settings(
    inline: Updated, base_answers: dict[str, str]
) -> None:
    """Never asked, yet recorded: the service's own index survives an update, where a default
    changed by the platform team (or a `when: false` question) would have replaced it."""
    answers = yaml.safe_load(inline.text(".copier-answers.yml"))
    assert answers["core_index_url"] == base_answers["core_index_url"]
    assert answers["_commit"] == "v1.1.0"


def test_the_loss_guard_reads_the_team_owned_list_instead_of_echoing_it() -> None:
    """Copier prints each migration's command line: the list stays in copier.yml."""
    migrations = copier_config()["_migrations"]
    assert isinstance(migrations, list)
    [guard] = [step for step in migrations if "version" not in step]
    assert guard["command"][-1] == "keep-team-edits"
    assert not any("team_owned_paths" in str(arg) for arg in guard["command"])
    result = run(
        [sys.executable, "-c", "import migrate; print(migrate.template_team_owned_paths())"],
        env={"PYTHONPATH": str(REPO_ROOT / "hooks" / "migrations")},
    )
    assert result.stdout.strip() == str(owned("team_owned_paths"))
