"""`make update` of a workspace across template releases: every folder updated, no team line lost.

The workspace is generated from v1.0.0 of the scripted releases (tests/update_support.py) with two
services; the team edits the root and both services (the existing update scenarios, per folder),
commits, and runs `make update`, which updates the root and then each service to v3.0.0.
"""

from __future__ import annotations

import pytest

from harness.commands import git
from harness.workspace import Workspace, generate_workspace
from tests.update_support import LATEST, TeamWork, build_versions

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


@pytest.fixture(scope="module")
def updated(tmp_path_factory: pytest.TempPathFactory, base_answers: dict[str, str]) -> Updated:
    versions = build_versions(tmp_path_factory.mktemp("template-versions") / "repo")
    workspace = generate_workspace(
        versions,
        tmp_path_factory.mktemp("workspace") / "acme-services",
        {**base_answers, "owner_team": "payments"},
        vcs_ref="v1.0.0",
    )
    workspace.make("service", "NAME=billing")
    workspace.make("service", "NAME=orders")
    workspace.commit("Two services")
    work = team_edits(workspace)
    return Updated(workspace, work, workspace.make("update").stdout)


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
