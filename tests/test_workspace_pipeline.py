"""The workspace's CI/CD: its workflows pass a service's static checks, and RUN on real git
histories they check exactly the affected members and deploy exactly the services whose image
changed.

The workspace root is rendered with `--data layout=workspace`; its `.github/` is committed into
the 40-member synthetic workspace of harness/affected_workspace.py (the workspace form's own
`make service` is not needed for that), whose fixed changes are then committed one by one. The
workflows run with tests/workflow_runner.py: `tools/affected.py` for real (python, git, jq), and
fake `make`, `aws`, `docker`, `terraform` and `curl` that record their calls.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from harness.affected_workspace import CHANGES, DATABASE_SERVICES, Change, History, build_history
from harness.commands import REPO_ROOT, git, run
from harness.generate import copy
from tests.tools import (
    action_pins,
    assumes_a_role,
    dev_tool,
    load_workflow,
    require_tool,
    workflow_steps,
    zizmor_findings,
)
from tests.workflow_runner import FakeCommands, JobResult, WorkflowRunner, emulated_actions, render

pytestmark = pytest.mark.xdist_group("workspace-pipeline")

ACCOUNT = "123456789012"
REGION = "us-east-1"
REGISTRY = f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com"
TOKEN = "codeartifact-token-for-the-test"


@pytest.fixture(scope="module")
def workspace(
    tmp_path_factory: pytest.TempPathFactory, template_repo: Path, base_answers: dict[str, str]
) -> Path:
    """The workspace root, rendered once (tasks skipped)."""
    destination = tmp_path_factory.mktemp("workspace-root") / "acme-services"
    copy(
        template_repo,
        destination,
        {**base_answers, "layout": "workspace", "service_name": "acme-services"},
        skip_tasks=True,
    )
    return destination


def github_files(root: Path) -> list[Path]:
    github = root / ".github"
    return sorted([*github.glob("workflows/*.yml"), *github.glob("actions/*/action.yml")])


# Static checks: those of a service's workflows.


def test_the_workflows_and_actions_exist(workspace: Path) -> None:
    assert [str(path.relative_to(workspace)) for path in github_files(workspace)] == [
        ".github/actions/private-index/action.yml",
        ".github/workflows/ci.yml",
        ".github/workflows/core-bump.yml",
        ".github/workflows/deploy.yml",
        ".github/workflows/publish-lib.yml",
        ".github/workflows/template-update.yml",
    ]


def test_the_shared_workflows_and_the_index_action_are_the_services_own_files() -> None:
    """No copies: the workspace's are links to the single-service template's (core-bump.yml only
    where the core comes from the index)."""
    for shared, service in [
        (".github/workflows/deploy.yml.jinja", None),
        (".github/workflows/template-update.yml.jinja", None),
        (
            ".github/workflows/{% if core_source != 'workspace' %}core-bump.yml{% endif %}.jinja",
            ".github/workflows/core-bump.yml.jinja",
        ),
        (".github/actions/private-index/action.yml.jinja", None),
    ]:
        link = REPO_ROOT / "workspace" / shared
        assert link.is_symlink(), shared
        assert link.resolve() == (REPO_ROOT / "template" / (service or shared)).resolve()


def test_workflows_and_actions_match_their_schemas(workspace: Path) -> None:
    files = github_files(workspace)
    check_jsonschema = dev_tool("check-jsonschema")
    workflows = [path for path in files if path.parent.name == "workflows"]
    run([check_jsonschema, "--builtin-schema", "vendor.github-workflows", *workflows])
    actions = [path for path in files if path.name == "action.yml"]
    run([check_jsonschema, "--builtin-schema", "vendor.github-actions", *actions])


def test_zizmor_finds_nothing(workspace: Path) -> None:
    assert zizmor_findings(workspace, "workflows", "actions") == []


def test_yamllint_is_clean_with_the_services_config(workspace: Path) -> None:
    """The rules a service ships (its .yamllint.yaml), less the file list it ignores."""
    config = yaml.safe_load((REPO_ROOT / "template" / ".yamllint.yaml").read_text())
    config.pop("ignore-from-file", None)
    result = run(
        [
            dev_tool("yamllint"),
            "--strict",
            "--format=parsable",
            f"--config-data={json.dumps(config)}",
            ".github",
        ],
        cwd=workspace,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout == ""


def test_actions_are_pinned_as_in_a_services_workflows(workspace: Path) -> None:
    """A commit with its release in a comment: the one a service's workflows use."""
    service = action_pins(sorted((REPO_ROOT / "template" / ".github").rglob("*.yml.jinja")))
    pins = action_pins(github_files(workspace))
    assert {"actions/checkout", "aws-actions/configure-aws-credentials"} <= pins.keys()
    assert {action: found for action, found in pins.items() if found != service[action]} == {}


def test_permissions_triggers_scripts_checkouts_and_timeouts(workspace: Path) -> None:
    """Empty permissions by default, OIDC only where a role is assumed, reading the code at most
    (and writes for the update pull requests, as a service's); no dangerous trigger; values reach
    scripts through env only; checkouts keep no credentials; every job has a timeout."""
    for path in [p for p in github_files(workspace) if p.parent.name == "workflows"]:
        document = load_workflow(path)
        assert not {"pull_request_target", "workflow_run", "issue_comment"} & set(document["on"])
        assert document["permissions"] == {}, path.name
        for job_id, job in document["jobs"].items():
            granted = dict(job["permissions"])
            assert (granted.pop("id-token", None) == "write") == assumes_a_role(workspace, job), (
                f"{path.name}: {job_id}"
            )
            allowed = {"contents": "read"}
            if path.name in {"template-update.yml", "core-bump.yml"}:
                allowed = {"contents": "write", "pull-requests": "write"}
            assert granted.items() <= allowed.items(), f"{path.name}: {job_id}: {granted}"
            assert "uses" in job or job.get("timeout-minutes"), f"{path.name}: {job_id}"
        for job_id, step in workflow_steps(document):
            assert "${{" not in str(step.get("run", "")), f"{path.name}: {job_id}"
            if str(step.get("uses", "")).startswith("actions/checkout@"):
                assert step["with"]["persist-credentials"] is False, f"{path.name}: {job_id}"


def test_the_matrix_job_gets_postgres_only_for_members_with_a_database(workspace: Path) -> None:
    job = load_workflow(workspace / ".github" / "workflows" / "ci.yml")["jobs"]["checks"]
    for database in (True, False):
        context = {"matrix": {"database": database}}
        image = render(job["services"]["postgres"]["image"], context)
        url = render(job["env"]["TEST_DATABASE_URL"], context)
        if database:
            assert re.fullmatch(r"postgres:\d+\.\d+-\w+", image)
            assert url.startswith("postgresql://postgres:postgres@127.0.0.1:5432/")
        else:
            assert (image, url) == ("", "")


# Running the workflows on the synthetic workspace's history.


@pytest.fixture(scope="module")
def history(tmp_path_factory: pytest.TempPathFactory, workspace: Path) -> History:
    def add_the_workflows(repo: Path) -> None:
        shutil.copytree(workspace / ".github", repo / ".github")
        shutil.copy2(workspace / "Makefile", repo / "Makefile")

    return build_history(tmp_path_factory.mktemp("workspace-history"), add_the_workflows)


def digest(service: str) -> str:
    return "sha256:" + hashlib.sha256(service.encode()).hexdigest()


def fake_aws(fakes: FakeCommands, commit: str) -> None:
    """What AWS answers healthy deploys: each service's image is in ECR once pushed."""
    fakes.answer(r"^aws codeartifact get-authorization-token", TOKEN)
    fakes.answer(r"^docker run --rm \S+ id -u$", "10001\n")
    fakes.answer(r"^aws ecr get-login-password", "ecr-password")
    fakes.answer(r"^aws ecr describe-images ", "ImageNotFoundException", exit_code=254)
    for service in [f"service-{number:02d}" for number in range(1, 31)]:
        fakes.answer(
            rf"^aws ecr describe-images --repository-name {service} .*imageTag={commit}",
            f"{digest(service)}\n",
            after=rf"^docker push {REGISTRY}/{service}:",
        )
    network = {"awsvpcConfiguration": {"subnets": ["subnet-a"], "securityGroups": ["sg-1"]}}
    fakes.answer(r"^aws ecs describe-services", json.dumps(network) + "\n")
    fakes.answer(r"^aws ec2 describe-subnets", "vpc-1\n")
    outputs = {
        "endpoint": {"value": "db.abc.rds.amazonaws.com"},
        "port": {"value": 5432},
        "database_name": {"value": "service"},
        "master_user_secret_arn": {"value": "arn:aws:secretsmanager:secret:rds!db-1"},
    }
    fakes.answer(r"^terraform -chdir=infra/terraform output -json", json.dumps(outputs))
    fakes.answer(r"^aws rds describe-db-instances", "svc_admin\n")
    fakes.answer(r"^aws ecs register-task-definition", "arn:aws:ecs:task-definition/x:7\n")
    fakes.answer(r"^aws ecs run-task", "arn:aws:ecs:task/migrations-1\n")
    fakes.answer(r"^aws ecs describe-tasks", "0\tEssential container in task exited\n")


@dataclass
class PipelineRun:
    fakes: FakeCommands
    jobs: dict[str, JobResult]
    commit: str

    def lines(self, pattern: str) -> list[str]:
        return [call.line for call in self.fakes.calls(pattern)]

    def legs(self, job: str) -> list[str]:
        """The members a matrix job ran for."""
        return sorted(entry["member"] for entry, _ in self.jobs[job].legs)

    def checked(self) -> list[str]:
        return sorted(
            line.removeprefix("make check PACKAGE=") for line in self.lines("^make check ")
        )

    def pushed(self) -> list[str]:
        return sorted(line.removeprefix("docker push ") for line in self.lines("^docker push "))

    def rollouts(self) -> list[tuple[str, str]]:
        """(ECS service, image) of every rollout."""
        found = []
        for call in self.fakes.calls(r"^uses:aws-actions/amazon-ecs-deploy-task-definition"):
            inputs = dict(arg.split("=", 1) for arg in call.args)
            task = json.loads(call.files[inputs["task-definition"]])
            found.append((inputs["service"], task["containerDefinitions"][0]["image"]))
        return sorted(found)


def run_ci(
    history: History,
    change: Change,
    tmp_path: Path,
    event: str = "push",
    answers: dict[str, tuple[str, int]] | None = None,
) -> PipelineRun:
    """ci.yml (deploy.yml through it) for the change's commit: pushed to main, or as a pull
    request against main at the commit before it; `answers` adds rules (pattern: (stdout, exit
    code)) over healthy ones."""
    require_tool("jq", "install jq (Debian: apt-get install jq); GitHub's runners have it")
    commit = history.commits[change.name]
    before = history.before(change)
    worktree = history.checkout(change, tmp_path / "checkout")
    git("update-ref", "refs/remotes/origin/main", before, cwd=worktree)
    fakes = FakeCommands(tmp_path / "fakes", ("aws", "docker", "terraform", "curl", "make"))
    fake_aws(fakes, commit)
    for pattern, (stdout, exit_code) in (answers or {}).items():
        fakes.answer(pattern, stdout, exit_code)
    runner = WorkflowRunner(
        worktree,
        fakes,
        emulated_actions(),
        github={
            "sha": commit,
            "ref": "refs/heads/main" if event == "push" else "refs/pull/7/merge",
            "event_name": event,
            "event": {"before": before} if event == "push" else {},
            "base_ref": "" if event == "push" else "main",
            "repository": "example/acme-services",
            "server_url": "https://github.com",
            "run_id": "4242",
            "workflow": "CI",
        },
        secrets={"SLACK_WEBHOOK_URL": "https://hooks.slack.invalid/T0/B0/x"},
    )
    return PipelineRun(fakes, runner.run("ci.yml"), commit)


def change_named(words: str) -> Change:
    return next(change for change in CHANGES if words in change.name)


def test_a_library_change_checks_its_dependants_and_deploys_the_services_using_it(
    history: History, tmp_path: Path
) -> None:
    change = change_named("three services")
    pipeline = run_ci(history, change, tmp_path)
    assert {job: result.result for job, result in pipeline.jobs.items()} == {
        "affected": "success",
        "checks": "success",
        "core-latest": "success",
        "images": "success",
        "deploy-staging": "success",
        "deploy-production": "success",
        "notify-failure": "skipped",
    }, pipeline.jobs["affected"].log
    assert pipeline.legs("checks") == sorted(change.affected)
    assert pipeline.checked() == sorted(change.affected)
    # One job checks the same members on the newest core, with the index's token and a database.
    (core_latest,) = pipeline.fakes.calls(r"^make core-latest")
    assert core_latest.args[0] == "core-latest"
    assert sorted(core_latest.args[1].removeprefix("PACKAGE=").split()) == sorted(change.affected)
    assert core_latest.env["UV_INDEX_PRIVATE_PASSWORD"] == TOKEN
    assert core_latest.env["TEST_DATABASE_URL"].startswith("postgresql://postgres:postgres@")
    services = sorted(change.deployed)
    assert services == ["service-01", "service-02", "service-03"]
    assert pipeline.legs("images") == services
    builds = pipeline.lines(r"^docker buildx build")
    assert sorted(re.search(r"PACKAGE=(\S+)", line)[1] for line in builds) == services  # type: ignore[index]
    assert pipeline.pushed() == [f"{REGISTRY}/{service}:{pipeline.commit}" for service in services]
    # Each environment's ECS service of each deployed service runs the digest pushed for it.
    assert pipeline.rollouts() == sorted(
        (f"{service}-{environment}", f"{REGISTRY}/{service}@{digest(service)}")
        for service in services
        for environment in ("staging", "production")
    )
    # Only the service with a database applies its Terraform and runs its migrations.
    assert [
        re.search(r"key=(\S+)/database\.tfstate", line)[1]  # type: ignore[index]
        for line in pipeline.lines(r"^terraform -chdir=infra/terraform init")
    ] == ["service-02/staging", "service-02/production"]
    assert len(pipeline.lines(r"^aws ecs run-task")) == 2
    assert set(DATABASE_SERVICES) & set(services) == {"service-02"}
    # The tests of that service, only, get the database.
    urls = {
        call.args[1].removeprefix("PACKAGE="): call.env.get("TEST_DATABASE_URL")
        for call in pipeline.fakes.calls("^make check")
    }
    assert str(urls.pop("service-02")).startswith("postgresql://postgres:postgres@127.0.0.1")
    assert set(urls.values()) == {""}


def test_a_pull_request_checks_and_builds_but_deploys_nothing(
    history: History, tmp_path: Path
) -> None:
    change = change_named("one service file")
    pipeline = run_ci(history, change, tmp_path, event="pull_request")
    assert pipeline.checked() == ["service-05"]
    assert pipeline.lines(r"^make core-latest") == ["make core-latest PACKAGE=service-05"]
    assert pipeline.legs("images") == ["service-05"]
    assert pipeline.jobs["deploy-staging"].result == "skipped"
    assert pipeline.jobs["deploy-production"].result == "skipped"
    assert not pipeline.lines(r"^docker (save|push)|^aws ecs")
    # The only artifact is the checked service's OpenAPI document.
    (upload,) = pipeline.lines(r"^uses:actions/upload-artifact")
    assert "name=openapi-service-05" in upload.split()


def test_a_lock_change_deploys_only_the_service_installing_the_package(
    history: History, tmp_path: Path
) -> None:
    pipeline = run_ci(history, change_named("third-party package used by one service"), tmp_path)
    assert pipeline.checked() == ["service-07"]
    assert pipeline.rollouts() == [
        (f"service-07-{environment}", f"{REGISTRY}/service-07@{digest('service-07')}")
        for environment in ("production", "staging")
    ]


def test_a_root_tool_config_checks_every_member_and_deploys_nothing(
    history: History, tmp_path: Path
) -> None:
    change = change_named("root tool config")
    pipeline = run_ci(history, change, tmp_path)
    assert pipeline.checked() == sorted(change.affected)
    assert len(pipeline.checked()) == 40
    assert {job: pipeline.jobs[job].result for job in ("images", "deploy-staging")} == {
        "images": "skipped",
        "deploy-staging": "skipped",
    }
    assert not pipeline.lines(r"^docker |^aws ecs")


def test_a_readme_at_the_root_runs_nothing(history: History, tmp_path: Path) -> None:
    pipeline = run_ci(history, change_named("README"), tmp_path)
    assert {job: result.result for job, result in pipeline.jobs.items()} == {
        "affected": "success",
        "checks": "skipped",
        "core-latest": "skipped",
        "images": "skipped",
        "deploy-staging": "skipped",
        "deploy-production": "skipped",
        "notify-failure": "skipped",
    }
    assert not pipeline.lines(r"^make |^docker |^aws ecs")


def test_a_failed_check_deploys_nothing_and_posts_to_slack(
    history: History, tmp_path: Path
) -> None:
    """One member's failure (a library's) holds back every deploy of the change."""
    change = change_named("three services")
    pipeline = run_ci(history, change, tmp_path, answers={r"^make check PACKAGE=mail$": ("", 2)})
    assert pipeline.checked() == sorted(change.affected)
    results = {entry["member"]: result.result for entry, result in pipeline.jobs["checks"].legs}
    assert results == {"mail": "failure"} | dict.fromkeys(change.deployed, "success")
    assert pipeline.jobs["deploy-staging"].result == "skipped"
    assert not pipeline.lines(r"^docker push|^aws ecs")
    (post,) = pipeline.fakes.calls(r"^curl .*hooks\.slack")
    assert "acme-services: the run of" in json.loads(post.stdin)["text"]


def test_make_affected_runs_the_module_and_an_empty_base_lists_every_member(
    history: History, tmp_path: Path
) -> None:
    change = change_named("three services")
    worktree = history.checkout(change, tmp_path / "checkout")
    make = require_tool("make", "install make (Debian: apt-get install make)")
    text = run(
        [make, "--no-print-directory", "affected", f"BASE={history.before(change)}"], cwd=worktree
    ).stdout
    assert text.splitlines()[0] == "4 of 40 members affected"
    assert "  projects/service-02, deployed: uses lib/mail" in text.splitlines()
    everything = run(
        [make, "--no-print-directory", "affected", "BASE=", "AFFECTED_FORMAT=json"], cwd=worktree
    ).stdout
    assert len(json.loads(everything)["include"]) == 40
