"""A workspace's update across template releases: every folder updated, no team line lost.

The workspace is generated from v1.0.0 of the scripted releases (tests/update_support.py) with two
services (orders with postgres); the team edits the root and both services (the existing update
scenarios, per folder) and commits: the workspace is three releases behind v3.0.0. From there it is
updated three ways, as a team and a platform team do: `make update` in the workspace; `fleet update
--local --push` from a fleet file listing it (after `fleet report` showed its root's line); and its
own template-update workflow, run against fake `gh` and `aws`.
"""

from __future__ import annotations

import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import pytest
import yaml

from harness.commands import git, run
from harness.workspace import Workspace, generate_workspace
from tests.update_support import LATEST, TeamWork, build_versions
from tests.workflow_runner import FakeCommands, WorkflowRunner, copier_for_uvx, emulated_actions

pytestmark = pytest.mark.xdist_group("workspace-update")

TEAM_TITLE = "# Billing, run by the payments team"
TEAM_ENV = "# The payments team's feature flag.\nTEAM_FEATURE_FLAG=on\n"


class Updated:
    """The workspace after the team's edits and `make update`."""

    def __init__(self, workspace: Workspace, work: dict[str, TeamWork], report: str) -> None:
        self.workspace = workspace
        self.work = work
        self.report = report


def team_edits(workspace: Workspace) -> dict[str, TeamWork]:
    """The team's work in the root and in both services, against what the releases change."""
    root = TeamWork(workspace.path)
    root.append(".gitignore", "team-scratch/\n")  # v1.1.0 adds a line at the other end
    root.create("local.mk", ".PHONY: team-report\nteam-report:\n\t@echo payments\n")
    root.append("README.md", "\nThe payments team's services.\n")
    billing = TeamWork(workspace.path / "projects" / "billing")
    billing.replace_line("README.md", 0, TEAM_TITLE)  # v1.1.0 rewrites the same line
    billing.append(".env.example", TEAM_ENV)  # v1.1.0 deletes the file
    billing.append("src/billing/api.py", "# The payments team's routers go above.\n")  # team-owned
    billing.create("local.mk", ".PHONY: invoices\ninvoices:\n\t@echo invoices\n")
    orders = TeamWork(workspace.path / "projects" / "orders")
    orders.create("docs/runbook.md", "# Orders runbook\n\nPage the payments on-call first.\n")
    orders.append("src/orders/widgets/schemas.py", "# Kept in step with the API docs.\n")  # moved
    orders.create("src/orders/pricing.py", '"""Prices: the team\'s module."""\n\nFLAT_FEE = 5\n')
    workspace.commit("The team's own work")
    return {".": root, "projects/billing": billing, "projects/orders": orders}


class Behind:
    """The workspace at v1.0.0 with the team's work committed: three releases behind."""

    def __init__(self, workspace: Workspace, work: dict[str, TeamWork]) -> None:
        self.workspace = workspace
        self.work = work

    def publish(self, remote: Path) -> Path:
        """Its repository as GitHub would hold it (bare): its commits, not `make update`'s work."""
        git("clone", "--quiet", "--bare", str(self.workspace.path), str(remote), cwd=remote.parent)
        return remote


@pytest.fixture(scope="module")
def behind(tmp_path_factory: pytest.TempPathFactory, base_answers: dict[str, str]) -> Behind:
    versions = build_versions(tmp_path_factory.mktemp("template-versions") / "repo")
    workspace = generate_workspace(
        versions,
        tmp_path_factory.mktemp("workspace") / "acme-services",
        {**base_answers, "owner_team": "payments"},
        vcs_ref="v1.0.0",
    )
    workspace.make("service", "NAME=billing")
    workspace.make("service", "NAME=orders", "DATABASE=postgres")
    workspace.commit("Two services")
    return Behind(workspace, team_edits(workspace))


@pytest.fixture(scope="module")
def updated(behind: Behind) -> Updated:
    return Updated(behind.workspace, behind.work, behind.workspace.make("update").stdout)


def test_every_folder_is_updated_to_the_new_release(updated: Updated) -> None:
    for folder in updated.work:
        answers = updated.workspace.answers(folder)
        assert answers["_commit"] == LATEST, folder
        # v2.0.0 renamed the answer; its migration carried the value over.
        assert answers["owning_team"] == "payments", folder
        assert "owner_team" not in answers, folder


def test_every_team_line_is_kept_in_every_folder(updated: Updated) -> None:
    for folder, work in updated.work.items():
        assert work.missing() == [], folder


def test_the_report_says_what_each_folder_left_to_resolve(updated: Updated) -> None:
    section = updated.report.split("Update report:\n", 1)[1]
    rows = [line.split() for line in section.splitlines() if line.startswith("  ")]
    report = {row[0]: row[1:] for row in rows}
    assert report.keys() == updated.work.keys(), updated.report
    assert report["."] == ["(the", "root)", "clean"], updated.report
    # The team's .env.example, which v1.1.0 deletes, is kept aside for the team to port; the
    # README's title, which both changed, is a conflict to resolve. The root's edits merge cleanly.
    outcome, *left = report["projects/billing"]
    assert outcome == "conflicts", updated.report
    assert "projects/billing/.env.example.team-edits" in " ".join(left)
    assert "projects/billing/README.md" in " ".join(left)
    # Both the team and v1.1.0 added docs/runbook.md.
    assert report["projects/orders"] == ["conflicts", "projects/orders/docs/runbook.md"]


def test_a_conflict_stays_unmerged_after_the_later_folders_update(updated: Updated) -> None:
    """orders was updated after billing's conflict; git still lists billing's README as unmerged
    (the editors' and the pre-commit hooks' cue)."""
    status = git("status", "--porcelain", cwd=updated.workspace.path).splitlines()
    assert "UU projects/billing/README.md" in status, status


def test_the_team_owned_and_moved_files_stay_the_teams(updated: Updated) -> None:
    services = updated.workspace.path / "projects"
    assert (
        (services / "billing/src/billing/api.py")
        .read_text()
        .endswith("# The payments team's routers go above.\n")
    )
    assert "invoices" in (services / "billing/local.mk").read_text()
    serialization = services / "orders/src/orders/widgets/serialization.py"
    assert "# Kept in step with the API docs." in serialization.read_text()
    assert not (services / "orders/src/orders/widgets/schemas.py").exists()


# fleet: the root's own line, and the whole workspace updated on one branch.

BRANCH = f"template-update/{LATEST.removeprefix('v')}"
ROOT_LINE = "acme-services"
"""The workspace's line in the report: its repository's name, as the fleet file gives it."""


@dataclass(frozen=True)
class FleetRun:
    remote: Path
    report: dict[str, dict[str, Any]]
    """The report's lines (fleet.json), by name."""
    report_output: str
    report_markdown: str
    update_output: str

    def branch(self, destination: Path) -> Workspace:
        """A clone of the branch the update pushed."""
        source = str(self.remote)
        git(
            "clone", "--quiet", "--branch", BRANCH, source, str(destination), cwd=destination.parent
        )
        return Workspace(destination)


def fleet(*args: str, cwd: Path) -> str:
    done = run([sys.executable, "-m", "fleet", *args], cwd=cwd, timeout=900)
    return done.stdout


@pytest.fixture(scope="module")
def fleet_run(tmp_path_factory: pytest.TempPathFactory, behind: Behind) -> FleetRun:
    """`fleet report`, then `fleet update --local --push --only acme-services`, from a fleet file
    listing the workspace's repository."""
    root = tmp_path_factory.mktemp("fleet")
    remote = behind.publish(root / f"{ROOT_LINE}.git")
    (root / "fleet.yml").write_text(f"services:\n  - {remote.name}\n")
    report_output = fleet("report", "--output", "report", cwd=root)
    document = json.loads((root / "report" / "fleet.json").read_text())
    report = {line["service"]: line for line in document["services"]}
    markdown = (root / "report" / "fleet.md").read_text()
    update_output = fleet("update", "--local", "--push", "--only", ROOT_LINE, cwd=root)
    return FleetRun(remote, report, report_output, markdown, update_output)


def test_the_fleet_report_gives_the_workspace_root_its_own_line(fleet_run: FleetRun) -> None:
    services = [f"{ROOT_LINE}/projects/billing", f"{ROOT_LINE}/projects/orders"]
    assert sorted(fleet_run.report) == [ROOT_LINE, *services]
    for name, database in [(ROOT_LINE, None), (services[0], "none"), (services[1], "postgres")]:
        line = fleet_run.report[name]
        assert (line["version"], line["latest"], line["behind"]) == ("v1.0.0", LATEST, 3), name
        assert (line["layout"], line["database"]) == ("workspace", database), name
        assert line["core"]["locked"] is not None, name
        assert line["core"]["locked"] == line["core"]["newest"], name
    markdown = fleet_run.report_markdown
    assert "2 services and 1 workspace root, 3 behind the template's newest release" in markdown
    assert f"| {ROOT_LINE} | v1.0.0 (latest {LATEST}) | 3 | workspace |  |" in markdown
    assert ROOT_LINE in fleet_run.report_output


def test_fleet_update_brings_the_root_and_every_service_current_on_one_branch(
    fleet_run: FleetRun, behind: Behind, tmp_path: Path
) -> None:
    names = ", ".join([ROOT_LINE, f"{ROOT_LINE}/projects/billing", f"{ROOT_LINE}/projects/orders"])
    assert f"{names}: conflicted -> {BRANCH} (" in fleet_run.update_output, fleet_run.update_output
    clone = fleet_run.branch(tmp_path / "branch")
    for folder, work in behind.work.items():
        assert clone.answers(folder)["_commit"] == LATEST, folder
        assert TeamWork(clone.path / folder, work.lines).missing() == [], folder
    main = yaml.safe_load(git("show", "main:.copier-answers.yml", cwd=fleet_run.remote))
    assert main["_commit"] == "v1.0.0", "main is left to review"


def test_a_service_made_on_the_update_branch_renders_the_newest_release(
    fleet_run: FleetRun, tmp_path: Path
) -> None:
    clone = fleet_run.branch(tmp_path / "branch")
    clone.make("service", "NAME=shipping")
    answers = clone.answers("projects/shipping")
    assert answers["_commit"] == LATEST
    assert "owning_team" in answers, "v2.0.0's renamed question"
    widgets = clone.path / "projects/shipping/src/shipping/widgets"
    assert (widgets / "serialization.py").is_file(), "v3.0.0's moved module"


# The workspace's own template-update workflow.


def test_the_template_update_workflow_opens_one_pull_request_for_the_root_and_every_service(
    behind: Behind, tmp_path: Path
) -> None:
    origin = behind.publish(tmp_path / "origin.git")
    project = tmp_path / "project"
    git("clone", "--quiet", str(origin), str(project), cwd=tmp_path)
    fakes = FakeCommands(tmp_path / "fakes", ("gh", "aws"))
    fakes.answer(r"^gh api ", exit_code=1)  # no branch of that release yet
    fakes.answer(r"^aws codeartifact get-authorization-token", "codeartifact-token")
    copier_for_uvx(fakes)
    runner = WorkflowRunner(
        project,
        fakes,
        emulated_actions(),
        github={
            "sha": "0" * 40,
            "ref": "refs/heads/main",
            "event_name": "schedule",
            "repository": "example/acme-services",
            "run_id": "4242",
            "token": "ghs_the_workflow_token",
            "event": {"repository": {"default_branch": "main"}},
        },
        secrets={"TEMPLATE_UPDATE_TOKEN": "ghs_the_update_token"},
    )
    job = runner.run("template-update.yml")["update"]
    assert job.result == "success", job.log
    for folder in behind.work:
        answers_file = PurePosixPath(folder, ".copier-answers.yml")
        answers = yaml.safe_load(git("show", f"{BRANCH}:{answers_file}", cwd=origin))
        assert answers["_commit"] == LATEST, folder
    (pull_request,) = fakes.calls(r"^gh pr create")
    assert pull_request.args[:8] == [
        "pr", "create", "--base", "main", "--head", BRANCH, "--label", "template-conflicts",
    ]  # fmt: skip
    body = pull_request.args[-1]
    for left in ("projects/billing/README.md", "projects/orders/docs/runbook.md"):
        assert f"- `{left}`" in body, body
    assert f"`make update VERSION={LATEST}` (the root, then every service folder)" in body
    # Every service's OpenAPI document was written again, as the updated service serves it.
    for service in ("billing", "orders"):
        assert f"uv run python -m {service}.openapi" in job.log, service
    assert not re.search(r"^::warning::make openapi failed", job.log, re.MULTILINE), job.log
