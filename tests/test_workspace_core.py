"""A workspace on the newest core, as a single service is (tests/test_core_updates.py): `make
core-latest`, the pre-release guard and the core-bump workflow at its root, the core release's
`core-released` dispatch reaching it through fleet.yml, and its affected-only CI checking exactly
the members whose locked closure holds the core.

The workspace (a service, billing, and a library, money, that does not use the core) is generated
while the local index holds only the core 1.1.0; then 1.2.0, 1.3.0rc1 and 2.0.0 are published next
to it (each changes billing's OpenAPI document), and later 1.2.1, which breaks billing. The tests
run in the order written.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pytest

from harness.commands import git, run
from harness.core_index import publish_core_versions
from harness.fleet import locked_core
from harness.generate import copy
from harness.workspace import Workspace, generate_workspace
from tests.core_update_support import (
    BREAKING,
    CORE,
    NEWER_RELEASES,
    BumpScenario,
    bump_scenario,
    core_latest,
    failing_pull_request,
    make,
    notify_services,
    one_self_merging_pull_request,
    release_checkout,
    release_core,
)
from tests.tools import load_workflow

pytestmark = pytest.mark.xdist_group("workspace-core-updates")

REPOSITORY = "example/acme-services"
"""The workspace's GitHub name, as fleet.yml lists it."""


@dataclass(frozen=True)
class Setting:
    index: Path
    work: Path
    workspace: Workspace


@pytest.fixture(scope="module")
def setting(tmp_path_factory: pytest.TempPathFactory, template_repo: Path) -> Setting:
    work = tmp_path_factory.mktemp("workspace-core")
    index = work / "simple"
    url = publish_core_versions(index, work, {"1.1.0": {}})
    workspace = generate_workspace(template_repo, work / "acme-services", {"core_index_url": url})
    workspace.make("service", "NAME=billing")
    workspace.make("lib", "NAME=money")
    workspace.commit("A service and a library")
    assert locked_core(workspace.path) == "1.1.0"
    publish_core_versions(index, work, NEWER_RELEASES)
    return Setting(index, work, workspace)


def test_core_latest_checks_the_members_named_on_the_newest_release_and_keeps_the_lock(
    setting: Setting,
) -> None:
    """As CI's core-latest job runs it, for the members a change affects (here both)."""
    code, output = core_latest(setting.workspace.path, "PACKAGE=billing money")
    assert code == 0, output
    assert f"Checking {CORE} 1.2.0 (uv.lock holds 1.1.0) in a copy of the workspace." in output
    assert f"The workspace passes its checks on {CORE} 1.2.0" in output
    for member in ("billing", "money"):
        assert f".venvs/{member}/bin/pytest" in output, member
    assert "1.3.0rc1" not in output


def test_make_check_refuses_a_locked_release_candidate(setting: Setting) -> None:
    """`make core-rc`'s lock (its lint, type check and tests are the service's, in
    test_core_updates.py): `make check` then refuses it before anything else runs, here and from a
    member's folder."""
    path = setting.workspace.path
    run(["uv", "lock", "--quiet", "--upgrade-package", f"{CORE}==1.3.0rc1"], cwd=path)
    assert locked_core(path) == "1.3.0rc1"
    for folder in (".", "projects/billing"):
        code, output = make(path / folder, "check")
        assert code != 0, folder
        assert f"uv.lock holds {CORE} 1.3.0rc1, a pre-release: it must not ship" in output, folder
        assert "ruff" not in output, folder
    git("checkout", "uv.lock", cwd=path)
    assert make(path, "core-release-guard") == (0, "")
    assert make(path, "core-rc")[1].startswith("Name the release candidate")


# core-bump.yml of the workspace, answering the core release's dispatch.


@pytest.fixture(scope="module")
def bump(setting: Setting) -> BumpScenario:
    return bump_scenario(setting.workspace.path, setting.work)


def test_the_workspace_bump_workflow_answers_core_released(setting: Setting) -> None:
    workflows = setting.workspace.path / ".github" / "workflows"
    document = load_workflow(workflows / "core-bump.yml")
    assert set(document["on"]) == {"schedule", "repository_dispatch", "workflow_dispatch"}
    assert document["on"]["repository_dispatch"] == {"types": ["core-released"]}


def test_the_release_s_dispatch_opens_one_self_merging_pull_request_moving_the_root_lock(
    bump: BumpScenario, tmp_path: Path
) -> None:
    """notify-services tells the workspace as it tells a service; its core-bump workflow, run for
    that event, moves the root's uv.lock and writes billing's openapi.json again (1.2.0 changes
    it), the checks pass; a second dispatch of the same core opens nothing."""
    checkout = release_checkout(tmp_path / "template")
    release_core(checkout, "1.2.0", {})
    dispatches = notify_services(checkout, ["example/orders", REPOSITORY], tmp_path / "fakes")
    (dispatch,) = [args for args in dispatches if f"repos/{REPOSITORY}/dispatches" in args]
    fields = dict(arg.split("=", 1) for arg in dispatch if "=" in arg)
    assert fields == {"event_type": "core-released", "client_payload[version]": "1.2.0"}
    event = {
        "action": fields["event_type"],
        "client_payload": {"version": fields["client_payload[version]"]},
        "repository": {"default_branch": "main"},
    }
    job = one_self_merging_pull_request(bump, "1.2.0", ["projects/billing/openapi.json"], event)
    assert ".venvs/billing/bin/pytest" in job.log


def test_ci_checks_on_the_bump_exactly_the_members_whose_closure_holds_the_core(
    bump: BumpScenario,
) -> None:
    """The workspace's affected-only CI, on the bump's pull request: billing, not money."""
    git("checkout", "--quiet", "--force", "core-bump/1.2.0", cwd=bump.project)
    found = run(
        ["python3", "tools/affected.py", "--base", "origin/main", "--format", "json"],
        cwd=bump.project,
    )
    entries = {entry["member"]: entry for entry in json.loads(found.stdout)["include"]}
    assert set(entries) == {"billing"}
    assert f"{CORE} 1.1.0 → 1.2.0" in entries["billing"]["reasons"]


@pytest.fixture(scope="module")
def breaking_release(setting: Setting) -> str:
    """1.2.1, published next to the others, breaks billing (the tests after the first that asks
    for it see it on the index)."""
    publish_core_versions(setting.index, setting.work, {"1.2.1": BREAKING})
    return "1.2.1"


def test_a_breaking_release_fails_core_latest_naming_the_member_and_keeps_the_lock(
    setting: Setting, breaking_release: str
) -> None:
    code, output = core_latest(setting.workspace.path)
    assert code != 0
    assert "\nFailed: billing\n" in output, output
    assert f"{CORE} {breaking_release} breaks the workspace (uv.lock holds 1.1.0)" in output
    assert "install_core" in output


def test_the_bump_workflow_labels_the_pull_request_and_names_what_fails(
    breaking_release: str, bump: BumpScenario
) -> None:
    body = failing_pull_request(bump, breaking_release)
    assert "What fails: billing." in body


def test_a_workspace_keeping_the_core_in_lib_says_it_moves_with_the_repository(
    tmp_path: Path, template_repo: Path, base_answers: dict[str, str]
) -> None:
    destination = tmp_path / "acme-services"
    answers = {**base_answers, "layout": "workspace", "core_source": "workspace"}
    copy(template_repo, destination, {**answers, "service_name": "acme-services"}, skip_tasks=True)
    workflows = destination / ".github" / "workflows"
    assert not (workflows / "core-bump.yml").exists()
    assert "core-latest" not in load_workflow(workflows / "ci.yml")["jobs"]
    member = (
        "smplkit-core is a member of this workspace (lib/smplkit-core/, core_source: workspace)"
    )
    for target, status in [("core-latest", 0), ("core-bump", 0), ("core-rc", 2)]:
        code, output = make(destination, target, "VERSION=1.3.0rc1")
        assert code == status, output
        assert member in output, target
