"""What the tests of every service on the newest core share (test_core_updates for a service,
test_workspace_core for a workspace): `make` with CI's settings, core-bump.yml run against fake
`gh` and `aws`, and the template repository's release (its checkout, a core committed at a
version, the job that tells the fleet)."""

from __future__ import annotations

import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from harness.commands import REPO_ROOT, git, run
from harness.core_index import DECLARES_A_NEW_RESPONSE, NEW_RESPONSE, core_variant
from tests.tools import load_workflow, require_tool
from tests.workflow_runner import Emulated, FakeCommands, JobResult, WorkflowRunner

CORE = "smplkit-core"
NEWER_RELEASES = dict.fromkeys(("1.2.0", "1.3.0rc1", "2.0.0"), DECLARES_A_NEW_RESPONSE)
"""Each declares one more error response, which changes a service's OpenAPI document (no break:
every check passes once openapi.json is written again)."""
TOKEN = "codeartifact-token-for-the-test"
EMULATED_ACTIONS = {
    "actions/checkout": lambda _: Emulated(),
    "astral-sh/setup-uv": lambda _: Emulated(),
    "aws-actions/configure-aws-credentials": lambda _: Emulated(),
}
"""Third-party actions, as far as the scripts after them see."""
BREAKING = {
    # 1.2.1 drops a public name every service imports.
    "src/smplcore/__init__.py": ("from smplcore.app import install_core\n", ""),
}


def make(folder: Path, *args: str) -> tuple[int, str]:
    """`make` in a service's (or a workspace's) folder, with CI's UV_LOCKED=1 (uv.lock used as it
    is, never updated)."""
    result = run(
        ["make", "--no-print-directory", *args],
        cwd=folder,
        env={"UV_LOCKED": "1"},
        check=False,
        timeout=900,
    )
    return result.returncode, result.stdout + result.stderr


def core_latest(folder: Path, *args: str) -> tuple[int, str]:
    """`make core-latest`, which leaves uv.lock and every file byte for byte as they were."""
    status_before = git("status", "--porcelain", cwd=folder)
    lock_before = (folder / "uv.lock").read_bytes()
    result = make(folder, "core-latest", *args)
    assert (folder / "uv.lock").read_bytes() == lock_before
    assert git("status", "--porcelain", cwd=folder) == status_before
    return result


def declares_the_new_response(document: str) -> bool:
    """Whether an OpenAPI document is the one the newer cores serve."""
    return f'"description": "{NEW_RESPONSE}"' in document


@dataclass(frozen=True)
class BumpScenario:
    origin: Path
    """The service's repository, as GitHub holds it (bare)."""
    project: Path
    """The workflow's checkout of `origin`."""
    fakes: FakeCommands


def bump_scenario(repository: Path, work: Path) -> BumpScenario:
    """The repository as GitHub holds it, the workflow's checkout of it, and fake `gh` and `aws`
    for core-bump.yml: the branch of each core version it may propose exists once pushed."""
    origin = work / "origin.git"
    git("clone", "--quiet", "--bare", str(repository), str(origin), cwd=work)
    project = work / "project"
    git("clone", "--quiet", str(origin), str(project), cwd=work)
    fakes = FakeCommands(work / "fakes", ("gh", "aws"))
    fakes.answer(r"^aws codeartifact get-authorization-token", TOKEN)
    fakes.answer(r"^gh api ", exit_code=1)  # no such branch
    # A branch exists once the workflow pushed it and opened its pull request.
    for version in ("1.2.0", "1.2.1"):
        branch = re.escape(f"branches/core-bump/{version}")
        fakes.answer(rf"^gh api \S+{branch} ", after=rf"^gh pr create .*core-bump/{version}")
    return BumpScenario(origin, project, fakes)


def run_bump_workflow(scenario: BumpScenario, event: dict[str, Any] | None = None) -> JobResult:
    """core-bump.yml on a fresh checkout of main, as on GitHub, for a `core-released` dispatch
    (`event`, by default one without a payload)."""
    git("checkout", "--quiet", "--force", "-B", "main", "origin/main", cwd=scenario.project)
    runner = WorkflowRunner(
        scenario.project,
        scenario.fakes,
        EMULATED_ACTIONS,
        github={
            "sha": "0" * 40,
            "ref": "refs/heads/main",
            "event_name": "repository_dispatch",
            "repository": "example/service",
            "run_id": "4242",
            "token": "ghs_the_workflow_token",
            "event": event or {"repository": {"default_branch": "main"}, "action": "core-released"},
        },
        secrets={"CORE_BUMP_TOKEN": "ghs_the_bump_token"},
    )
    job = runner.run("core-bump.yml")["bump"]
    assert job.result == "success", job.log
    return job


def one_self_merging_pull_request(
    scenario: BumpScenario,
    version: str,
    documents: list[str],
    event: dict[str, Any] | None = None,
) -> JobResult:
    """core-bump.yml run twice for the same core `version`, on which the checks pass once the
    OpenAPI `documents` are written again: one branch changing uv.lock and those documents (the
    new core's, which the checks compared with what the service serves), one pull request set to
    merge itself; the first run's job."""
    job = run_bump_workflow(scenario, event)
    branch = f"core-bump/{version}"
    pushed = git("show", f"{branch}:uv.lock", cwd=scenario.origin)
    assert f'name = "{CORE}"\nversion = "{version}"' in pushed
    changed = git("diff", "--name-only", "main", branch, cwd=scenario.origin).split()
    assert changed == sorted(["uv.lock", *documents])
    for document in documents:
        new = git("show", f"{branch}:{document}", cwd=scenario.origin)
        assert new == (scenario.project / document).read_text(), "the document the checks saw"
        assert declares_the_new_response(new), document
        assert not declares_the_new_response(git("show", f"main:{document}", cwd=scenario.origin))
    (pull_request,) = scenario.fakes.calls(r"^gh pr create")
    assert pull_request.args[:6] == ["pr", "create", "--base", "main", "--head", branch]
    assert "--label" not in pull_request.args
    assert f"in this diff: {' '.join(documents)}." in pull_request.args[-1]
    (merge,) = scenario.fakes.calls(r"^gh pr merge")
    assert merge.args == ["pr", "merge", branch, "--auto", "--squash"]

    run_bump_workflow(scenario, event)
    assert len(scenario.fakes.calls(r"^gh pr create")) == 1
    assert len(scenario.fakes.calls(r"^gh pr merge")) == 1
    return job


def failing_pull_request(scenario: BumpScenario, version: str) -> str:
    """core-bump.yml for a core `version` on which the checks fail: its branch pushed, its pull
    request labelled `core-bump-failed` and never merged; the pull request's body."""
    run_bump_workflow(scenario)
    branch = f"core-bump/{version}"
    assert f'version = "{version}"' in git("show", f"{branch}:uv.lock", cwd=scenario.origin)
    assert scenario.fakes.calls(r"^gh label create core-bump-failed ")
    pull_request = scenario.fakes.calls(r"^gh pr create")[-1]
    assert pull_request.args[4:8] == ["--head", branch, "--label", "core-bump-failed"]
    assert not scenario.fakes.calls(rf"^gh pr merge {re.escape(branch)} ")
    body = pull_request.args[-1]
    assert f"The checks fail on {CORE} {version}" in body
    return body


def release_checkout(checkout: Path) -> Path:
    """The release's view of the template repository: its scripts (with the API rule and the index
    reader they share with the workspaces) and the core 1.1.0, tagged v1.0.0."""
    (checkout / ".github" / "scripts").mkdir(parents=True)
    shutil.copy2(REPO_ROOT / ".github" / "scripts" / "release.py", checkout / ".github" / "scripts")
    (checkout / "workspace" / "tools").mkdir(parents=True)
    for shared in ("api_semver.py", "simple_index.py"):
        shutil.copy2(REPO_ROOT / "workspace" / "tools" / shared, checkout / "workspace" / "tools")
    git("init", "--quiet", "--initial-branch=main", cwd=checkout)
    release_core(checkout, "1.1.0", {})
    git("tag", "v1.0.0", cwd=checkout)
    return checkout


def release_core(checkout: Path, version: str, replacements: dict[str, tuple[str, str]]) -> None:
    """Commit the core at `version`, with the replacements, as the next template release."""
    variant = core_variant(checkout.parent, version, replacements)
    shutil.rmtree(checkout / "core", ignore_errors=True)
    shutil.copytree(variant, checkout / "core", ignore=shutil.ignore_patterns("tests"))
    git("add", "--all", cwd=checkout)
    git("commit", "--quiet", "--message", f"Core {version}", cwd=checkout)


def notify_services(checkout: Path, repositories: list[str], fakes_root: Path) -> list[list[str]]:
    """The release workflow's job that tells the fleet (alone: the jobs before it publish), run
    with `repositories` in fleet.yml; the `gh api` calls it made."""
    require_tool("yq", "install yq (Debian: apt-get install yq); GitHub's runners have it")
    listed = "".join(f"  - {repository}\n" for repository in repositories)
    (checkout / "fleet.yml").write_text(f"# The services.\nservices:\n{listed}")
    release = load_workflow(REPO_ROOT / ".github" / "workflows" / "release.yml")
    job = {
        key: value for key, value in release["jobs"]["notify-services"].items() if key != "needs"
    }
    workflows = checkout / ".github" / "workflows"
    workflows.mkdir()
    (workflows / "release.yml").write_text(yaml.safe_dump({"jobs": {"notify-services": job}}))
    fakes = FakeCommands(fakes_root, ("gh",))
    runner = WorkflowRunner(
        checkout,
        fakes,
        EMULATED_ACTIONS,
        github={
            "sha": "0" * 40,
            "ref": "refs/tags/v1.0.0",
            "repository": "example/template",
            "run_id": "1",
        },
        secrets={"FLEET_DISPATCH_TOKEN": "ghs_the_dispatch_token"},
    )
    result = runner.run("release.yml")["notify-services"]
    assert result.result == "success", result.log
    return [call.args for call in fakes.calls(r"^gh api ")]
