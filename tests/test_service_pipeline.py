"""The generated service's pipeline, image recipe and YAML: static checks on every variant.

Each variant is rendered once (tasks skipped: no install needed) and checked with the standard tools
of each ecosystem (the GitHub workflow schema, zizmor, hadolint, yamllint, the Dependabot schema),
then against the rules the pipeline must keep: pinned actions, least privilege, OIDC only, no
untrusted input in scripts, and the CI/CD steps the issue asks for. The last tests run the
template-update workflow's own scripts against a real `copier update`.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from harness.commands import git, run, tool_env
from harness.generate import copy
from harness.template_repo import release
from tests.services import GeneratedService, ServiceCache
from tests.tools import (
    dev_tool,
    dockerfile_instructions,
    load_workflow,
    require_tool,
    run_step_script,
    workflow_steps,
)

VARIANTS: dict[str, dict[str, str]] = {
    "defaults": {},
    "postgres": {"database": "postgres"},
    "long-names": {
        "service_name": "a-rather-long-service-name-for-the-limit",
        "package_name": "rather_long_service",
        "python_version": "3.13",
        "http_port": "18080",
        "slack_channel": "#a-rather-long-channel-name-for-deploy-alerts",
        "ecs_cluster": "products-eu",
        "aws_region": "eu-west-1",
        "aws_account_id": "210987654321",
    },
}
SHA_PIN = re.compile(r"^[\w.-]+/[\w./-]+@[0-9a-f]{40}$")
VERSION_COMMENT = re.compile(r"^#\s+v\d+\.\d+\.\d+$")
USES_LINE = re.compile(r"^\s*(?:-\s+)?uses:\s*(?P<ref>\S+)\s*(?P<comment>#.*)?$")


@pytest.fixture(scope="module", params=list(VARIANTS))
def service(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    template_repo: Path,
    base_answers: dict[str, str],
) -> GeneratedService:
    """The variant rendered once for this module (tasks skipped)."""
    destination = tmp_path_factory.mktemp(f"pipeline-{request.param}") / "service"
    copy(template_repo, destination, {**base_answers, **VARIANTS[request.param]}, skip_tasks=True)
    return GeneratedService(destination)


def answer(service: GeneratedService, name: str) -> str:
    return str(service.answers[name])


def postgres(service: GeneratedService) -> bool:
    return answer(service, "database") == "postgres"


def workflow_files(service: GeneratedService) -> list[Path]:
    return sorted((service.path / ".github" / "workflows").glob("*.yml"))


def workflow(service: GeneratedService, name: str) -> dict[str, Any]:
    return load_workflow(service.path / ".github" / "workflows" / name)


def step_named(job: dict[str, Any], prefix: str) -> dict[str, Any]:
    matches = [step for step in job["steps"] if step.get("name", "").startswith(prefix)]
    assert len(matches) == 1, f"{len(matches)} steps named {prefix!r}"
    step: dict[str, Any] = matches[0]
    return step


def step_index(job: dict[str, Any], prefix: str) -> int:
    return next(i for i, step in enumerate(job["steps"]) if step.get("name", "").startswith(prefix))


def uses_of(job: dict[str, Any]) -> list[str]:
    return [str(step["uses"]).split("@")[0] for step in job["steps"] if "uses" in step]


def script_of(job: dict[str, Any]) -> str:
    return "\n".join(str(step.get("run", "")) for step in job["steps"])


# The ecosystems' own checkers.


def test_the_workflows_exist(service: GeneratedService) -> None:
    assert {path.name for path in workflow_files(service)} == {"ci.yml", "template-update.yml"}


def test_workflows_match_the_github_workflow_schema(service: GeneratedService) -> None:
    run(
        [
            dev_tool("check-jsonschema"),
            "--builtin-schema",
            "vendor.github-workflows",
            *workflow_files(service),
        ]
    )


def test_dependabot_config_matches_its_schema(service: GeneratedService) -> None:
    run(
        [
            dev_tool("check-jsonschema"),
            "--builtin-schema",
            "vendor.dependabot",
            service.path / ".github" / "dependabot.yml",
        ]
    )


def test_zizmor_finds_nothing_in_workflows_dependabot_and_pre_commit(
    service: GeneratedService,
) -> None:
    """Offline audits (online ones need GitHub) of .github/workflows/ and the other configurations
    zizmor reads; no ignore comments or config honoured."""
    result = run(
        [
            dev_tool("zizmor"),
            "--offline",
            "--no-ignores",
            "--no-config",
            "--format",
            "json",
            "--collect=workflows",
            "--collect=dependabot",
            "--collect=pre-commit",
            ".",
        ],
        cwd=service.path,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert json.loads(result.stdout) == []


def test_hadolint_finds_nothing(service: GeneratedService) -> None:
    """No finding at any level (stricter than the default threshold), ignore pragmas disabled."""
    result = run(
        [
            dev_tool("hadolint"),
            "--no-color",
            "--format",
            "json",
            "--disable-ignore-pragma",
            "Dockerfile",
        ],
        cwd=service.path,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert json.loads(result.stdout) == []


def test_yamllint_is_clean_with_the_shipped_config(service: GeneratedService) -> None:
    yaml_files = sorted(
        str(path.relative_to(service.path))
        for path in service.files()
        if path.suffix in {".yml", ".yaml"}
    )
    assert {".github/workflows/ci.yml", ".pre-commit-config.yaml", ".yamllint.yaml"} <= set(
        yaml_files
    )
    result = run(
        [
            dev_tool("yamllint"),
            "--strict",
            "--format",
            "parsable",
            "--config-file",
            ".yamllint.yaml",
            ".",
        ],
        cwd=service.path,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout == ""


def test_yamllint_config_is_found_without_naming_it(service: GeneratedService) -> None:
    """`yamllint .` in the service (an editor, a hook) picks up the same settings."""
    result = run(
        [dev_tool("yamllint"), "--strict", "--format", "parsable", "."],
        cwd=service.path,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


# Rules every workflow keeps.


def test_every_action_is_pinned_to_a_commit_with_its_release_in_a_comment(
    service: GeneratedService,
) -> None:
    pins = 0
    for path in workflow_files(service):
        for line in path.read_text().splitlines():
            match = USES_LINE.match(line)
            if not match:
                continue
            assert SHA_PIN.match(match["ref"]), f"{path.name}: {line.strip()}"
            assert match["comment"], f"{path.name}: {line.strip()}"
            assert VERSION_COMMENT.match(match["comment"]), f"{path.name}: {line.strip()}"
            pins += 1
    assert pins >= 10


def test_one_pin_per_action(service: GeneratedService) -> None:
    pins: dict[str, set[str]] = {}
    for path in workflow_files(service):
        for line in path.read_text().splitlines():
            match = USES_LINE.match(line)
            if match:
                action, sha = match["ref"].split("@")
                pins.setdefault(action, set()).add(f"{sha} {match['comment']}")
    assert {action: found for action, found in pins.items() if len(found) > 1} == {}


def test_no_dangerous_triggers_and_no_expressions_in_scripts(service: GeneratedService) -> None:
    for path in workflow_files(service):
        document = load_workflow(path)
        assert not {"pull_request_target", "workflow_run", "issue_comment"} & set(document["on"]), (
            path.name
        )
        for job_id, step in workflow_steps(document):
            # Values reach scripts through `env:` only, never spliced into the script text.
            assert "${{" not in str(step.get("run", "")), (
                f"{path.name}: {job_id}: {step.get('name')}"
            )


def test_permissions_are_empty_by_default_and_granted_per_job(service: GeneratedService) -> None:
    expected = {
        "ci.yml": {
            "checks": {"contents": "read", "id-token": "write"},
            "image": {"contents": "read", "id-token": "write"},
            "deploy-staging": {"contents": "read", "id-token": "write"},
            "deploy-production": {"contents": "read", "id-token": "write"},
            "notify-failure": {},
        },
        "template-update.yml": {
            "update": {"contents": "write", "pull-requests": "write", "id-token": "write"},
        },
    }
    for path in workflow_files(service):
        document = load_workflow(path)
        assert document["permissions"] == {}, path.name
        assert {job_id: job["permissions"] for job_id, job in document["jobs"].items()} == expected[
            path.name
        ]


def test_oidc_tokens_only_where_aws_is_assumed(service: GeneratedService) -> None:
    """id-token: write exactly where configure-aws-credentials assumes a role; no stored key."""
    account = answer(service, "aws_account_id")
    for path in workflow_files(service):
        text = path.read_text()
        assert "aws-access-key-id" not in text
        assert "aws-secret-access-key" not in text
        assert "AWS_ACCESS_KEY_ID" not in text
        assert "AWS_SECRET_ACCESS_KEY" not in text
        for job_id, job in load_workflow(path)["jobs"].items():
            assumes = [s for s in job["steps"] if "configure-aws-credentials@" in s.get("uses", "")]
            assert (job["permissions"].get("id-token") == "write") == bool(assumes), (
                f"{path.name}: {job_id}"
            )
            for step in assumes:
                assert re.fullmatch(
                    rf"arn:aws:iam::{account}:role/[\w+=,.@-]+", step["with"]["role-to-assume"]
                )
                assert step["with"]["aws-region"] == answer(service, "aws_region")


def test_checkouts_keep_no_credentials(service: GeneratedService) -> None:
    checkouts = 0
    for path in workflow_files(service):
        for job_id, step in workflow_steps(load_workflow(path)):
            if step.get("uses", "").startswith("actions/checkout@"):
                assert step.get("with", {}).get("persist-credentials") is False, (
                    f"{path.name}: {job_id}"
                )
                checkouts += 1
    assert checkouts >= 5


def test_every_job_has_a_timeout(service: GeneratedService) -> None:
    for path in workflow_files(service):
        for job_id, job in load_workflow(path)["jobs"].items():
            assert job.get("timeout-minutes"), f"{path.name}: {job_id}"


def test_codeartifact_tokens_are_fetched_per_step_and_masked(service: GeneratedService) -> None:
    """The index token comes from CodeArtifact at run time, masked; it is never a stored secret."""
    fetch = (
        "aws codeartifact get-authorization-token \\\n"
        f"  --domain {answer(service, 'codeartifact_domain')} "
        f"--domain-owner {answer(service, 'aws_account_id')}"
    )
    fetches = 0
    for path in workflow_files(service):
        document = load_workflow(path)
        assert "UV_INDEX_PRIVATE_PASSWORD" not in json.dumps(document.get("env", {}))
        for _, step in workflow_steps(document):
            script = str(step.get("run", ""))
            if "UV_INDEX_PRIVATE_PASSWORD=" in script:
                assert fetch in script
                assert "--query authorizationToken --output text" in script
                assert 'echo "::add-mask::${UV_INDEX_PRIVATE_PASSWORD}"' in script
                fetches += 1
        if path.name == "ci.yml":
            assert document["env"]["UV_INDEX_PRIVATE_USERNAME"] == "aws"
    assert fetches >= 5
    assert "secrets.UV_INDEX" not in "".join(path.read_text() for path in workflow_files(service))


# ci.yml: the checks.


def test_ci_runs_on_pull_requests_and_pushes_to_main_one_run_per_ref(
    service: GeneratedService,
) -> None:
    ci = workflow(service, "ci.yml")
    assert set(ci["on"]) == {"pull_request", "push"}
    assert ci["on"]["push"] == {"branches": ["main"]}
    assert ci["concurrency"]["group"] == "${{ github.workflow }}-${{ github.ref }}"
    # A newer push cancels an older pull request run, never a run on main (it may be deploying).
    assert ci["concurrency"]["cancel-in-progress"] == "${{ github.event_name == 'pull_request' }}"


def test_checks_lint_typecheck_and_test_with_the_locked_tools(service: GeneratedService) -> None:
    job = workflow(service, "ci.yml")["jobs"]["checks"]
    setup_uv = next(s for s in job["steps"] if "astral-sh/setup-uv@" in s.get("uses", ""))
    assert setup_uv["with"]["enable-cache"] is True
    assert setup_uv["with"]["cache-dependency-glob"] == "uv.lock"
    assert setup_uv["with"]["python-version"] == answer(service, "python_version")
    assert "uv sync --locked" in step_named(job, "Install")["run"]
    assert step_named(job, "Lint")["run"].startswith("uv run --locked ruff check")
    assert step_named(job, "Format")["run"] == "uv run --locked ruff format --check"
    assert step_named(job, "Type check")["run"] == "uv run --locked mypy"
    assert step_named(job, "Tests")["run"] == "uv run --locked pytest"
    hooks = step_named(job, "pre-commit hooks")
    assert hooks["run"].startswith("uv run --locked pre-commit run --all-files")
    assert hooks["env"]["SKIP"] == "ruff-check,ruff-format,mypy"


def test_import_test_installs_like_the_image_and_imports_every_module(
    service: GeneratedService,
) -> None:
    script = step_named(workflow(service, "ci.yml")["jobs"]["checks"], "Import test")["run"]
    assert 'UV_PROJECT_ENVIRONMENT="${RUNNER_TEMP}/runtime-venv"' in script
    assert "uv sync --locked --no-dev --no-editable" in script
    assert f"import {service.package_name} as package" in script
    assert "pkgutil.walk_packages" in script
    assert "importlib.import_module" in script


def test_import_test_script_imports_the_package_for_real(
    service: GeneratedService, tmp_path: Path
) -> None:
    """The step's Python, run against a stand-in package with a nested module."""
    script = step_named(workflow(service, "ci.yml")["jobs"]["checks"], "Import test")["run"]
    program = script.split("<<'PY'\n", 1)[1].split("\nPY", 1)[0]
    package = tmp_path / service.package_name
    (package / "inner").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "inner" / "__init__.py").write_text("")
    (package / "inner" / "leaf.py").write_text("import sys\nsys.modules[__name__].seen = True\n")
    result = subprocess.run(  # noqa: S603 - the workflow step's own Python
        [sys.executable, "-c", program], cwd=tmp_path, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    assert "imported 3 modules" in result.stdout
    (package / "inner" / "broken.py").write_text("import not_a_declared_dependency\n")
    result = subprocess.run(  # noqa: S603 - the workflow step's own Python
        [sys.executable, "-c", program], cwd=tmp_path, capture_output=True, text=True, check=False
    )
    assert result.returncode != 0
    assert "not_a_declared_dependency" in result.stderr


def test_tests_get_a_postgres_service_with_the_database_option(service: GeneratedService) -> None:
    job = workflow(service, "ci.yml")["jobs"]["checks"]
    if not postgres(service):
        assert "services" not in job
        assert "TEST_DATABASE_URL" not in json.dumps(job)
        return
    database = job["services"]["postgres"]
    assert re.fullmatch(r"postgres:\d+\.\d+-\w+", database["image"])
    assert database["ports"] == ["5432:5432"]
    assert "pg_isready" in database["options"]
    assert (
        job["env"]["TEST_DATABASE_URL"] == "postgresql://postgres:postgres@127.0.0.1:5432/postgres"
    )


def test_image_job_builds_with_the_index_token_as_a_build_secret(service: GeneratedService) -> None:
    job = workflow(service, "ci.yml")["jobs"]["image"]
    build = step_named(job, "Build the image")["run"]
    assert "docker buildx build" in build
    assert "--secret id=uv_index_password,env=UV_INDEX_PRIVATE_PASSWORD" in build
    assert "--build-arg" not in build
    smoke = step_named(job, "Smoke test")["run"]
    assert "--read-only" in smoke
    assert "id -u" in smoke
    assert f"http://127.0.0.1:{answer(service, 'http_port')}/livez" in smoke


# ci.yml: the deploy.


def test_deploys_staging_then_production_on_main_only(service: GeneratedService) -> None:
    jobs = workflow(service, "ci.yml")["jobs"]
    staging, production = jobs["deploy-staging"], jobs["deploy-production"]
    assert staging["needs"] == ["checks", "image"]
    assert staging["if"] == "github.event_name == 'push' && github.ref == 'refs/heads/main'"
    assert production["needs"] == ["deploy-staging"]
    assert staging["environment"] == {"name": "staging"}
    assert production["environment"] == {"name": "production"}
    for name, job in (("staging", staging), ("production", production)):
        assert job["concurrency"] == {"group": f"deploy-{name}", "cancel-in-progress": False}
        assert job["env"]["DEPLOY_ENVIRONMENT"] == name
        assert (
            job["env"]["ECS_SERVICE"]
            == f"${{{{ vars.ECS_SERVICE || '{answer(service, 'service_name')}-{name}' }}}}"
        )
        assert (
            job["env"]["ECS_CLUSTER"]
            == f"${{{{ vars.ECS_CLUSTER || '{answer(service, 'ecs_cluster')}' }}}}"
        )


def test_staging_pushes_the_image_tagged_with_the_commit_and_production_deploys_it(
    service: GeneratedService,
) -> None:
    jobs = workflow(service, "ci.yml")["jobs"]
    registry = (
        f"{answer(service, 'aws_account_id')}.dkr.ecr.{answer(service, 'aws_region')}.amazonaws.com"
    )
    for job in (jobs["deploy-staging"], jobs["deploy-production"]):
        assert job["env"]["ECR_REGISTRY"] == registry
        assert step_named(job, "Name the image")["run"] == (
            'echo "image=${ECR_REGISTRY}/${ECR_REPOSITORY}:${GITHUB_SHA}" >> "${GITHUB_OUTPUT}"'
        )
        assert "aws ecr describe-images" in step_named(job, "Check that the image is in ECR")["run"]
    push = step_named(jobs["deploy-staging"], "Build the image and push it to ECR")
    assert 'docker buildx build --push --tag "${IMAGE}"' in push["run"]
    assert "--secret id=uv_index_password,env=UV_INDEX_PRIVATE_PASSWORD" in push["run"]
    assert "docker login --username AWS --password-stdin" in push["run"]
    assert not any(
        "push it to ECR" in step.get("name", "") for step in jobs["deploy-production"]["steps"]
    )


def test_rollout_renders_the_task_definition_and_waits_for_stability(
    service: GeneratedService,
) -> None:
    for environment in ("staging", "production"):
        job = workflow(service, "ci.yml")["jobs"][f"deploy-{environment}"]
        fill = step_named(job, "Fill in the environment")["run"]
        assert "infra/ecs/task-definition.json" in fill
        assert "__ENVIRONMENT__" in fill
        render = step_named(job, "Put the new image in the task definition")
        assert render["uses"].startswith("aws-actions/amazon-ecs-render-task-definition@")
        assert render["with"]["image"] == "${{ steps.image.outputs.image }}"
        assert render["with"]["container-name"] == "${{ env.CONTAINER_NAME }}"
        assert job["env"]["CONTAINER_NAME"] == answer(service, "service_name")
        rollout = step_named(job, "Roll the ECS service out")
        assert rollout["uses"].startswith("aws-actions/amazon-ecs-deploy-task-definition@")
        assert (
            rollout["with"]["task-definition"]
            == "${{ steps.task-definition.outputs.task-definition }}"
        )
        assert rollout["with"]["service"] == "${{ env.ECS_SERVICE }}"
        assert rollout["with"]["cluster"] == "${{ env.ECS_CLUSTER }}"
        assert rollout["with"]["wait-for-service-stability"] is True
        assert job["steps"][-1] is rollout


def test_database_terraform_and_migrations_run_before_the_rollout(
    service: GeneratedService,
) -> None:
    for environment in ("staging", "production"):
        job = workflow(service, "ci.yml")["jobs"][f"deploy-{environment}"]
        script = script_of(job)
        if not postgres(service):
            assert "terraform" not in script
            assert "alembic" not in script
            assert "hashicorp/setup-terraform" not in uses_of(job)
            continue
        assert "hashicorp/setup-terraform" in uses_of(job)
        init = step_named(job, "Terraform init")["run"]
        assert init.startswith("terraform -chdir=infra/terraform init -input=false")
        assert (
            f"key={answer(service, 'service_name')}/${{DEPLOY_ENVIRONMENT}}/database.tfstate"
            in init
        )
        plan = step_named(job, "Terraform plan")
        assert plan["run"].startswith("terraform -chdir=infra/terraform plan")
        assert "-out=tfplan" in plan["run"]
        assert plan["env"]["TF_VAR_environment"] == environment
        apply = step_named(job, "Terraform apply")
        assert apply["run"].startswith("terraform -chdir=infra/terraform apply")
        assert apply["run"].endswith(" tfplan")
        network = step_named(job, "Read the service's network")["run"]
        for variable in (
            "TF_VAR_vpc_id",
            "TF_VAR_private_subnet_ids",
            "TF_VAR_service_security_group_id",
        ):
            assert f"{variable}=" in network
        register = step_named(job, "Register the task definition")
        assert register["uses"].startswith("aws-actions/amazon-ecs-deploy-task-definition@")
        assert (
            "service" not in register["with"]
        )  # registers only: the service is updated after migrating
        migrate = step_named(job, "Run the migrations")
        assert (
            migrate["env"]["TASK_DEFINITION_ARN"]
            == "${{ steps.register.outputs.task-definition-arn }}"
        )
        for fragment in (
            "aws ecs run-task",
            '"alembic", "upgrade", "head"',
            "aws ecs wait tasks-stopped",
            "exitCode",
            'if [ "${exit_code}" != "0" ]',
            "exit 1",
        ):
            assert fragment in migrate["run"], fragment
        order = [
            step_index(job, name)
            for name in (
                "Terraform init",
                "Terraform plan",
                "Terraform apply",
                "Read the database's address",
                "Fill in the environment",
                "Put the new image",
                "Register the task definition",
                "Run the migrations",
                "Roll the ECS service out",
            )
        ]
        assert order == sorted(order)


def test_a_failed_deploy_is_reported_to_the_slack_channel(service: GeneratedService) -> None:
    job = workflow(service, "ci.yml")["jobs"]["notify-failure"]
    assert job["needs"] == ["checks", "image", "deploy-staging", "deploy-production"]
    assert job["if"].startswith("failure() && github.event_name == 'push'")
    (step,) = job["steps"]
    assert step["env"]["SLACK_WEBHOOK_URL"] == "${{ secrets.SLACK_WEBHOOK_URL }}"
    assert step["env"]["SLACK_CHANNEL"] == answer(service, "slack_channel")
    assert "curl --fail" in step["run"]
    assert '"${SLACK_WEBHOOK_URL}"' in step["run"]


def test_the_slack_message_is_valid_json_whatever_the_input(
    service: GeneratedService, tmp_path: Path
) -> None:
    """The notify script, run with a fake curl: quotes in the values cannot break the payload."""
    step = workflow(service, "ci.yml")["jobs"]["notify-failure"]["steps"][0]
    require_tool("jq", "install jq (Debian: apt-get install jq); GitHub's runners have it")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "curl").write_text(
        f'#!/bin/sh\ncat > "{tmp_path}/payload.json"\necho "$@" > "{tmp_path}/args"\n'
    )
    (bin_dir / "curl").chmod(0o755)
    env = {
        "PATH": f"{bin_dir}:{tool_env()['PATH']}",
        "SLACK_WEBHOOK_URL": "https://hooks.slack.invalid/T0/B0/x",
        "RUN_URL": "https://github.invalid/run/1\"'$(touch pwned)",
        "SLACK_CHANNEL": step["env"]["SLACK_CHANNEL"],
        "SERVICE": step["env"]["SERVICE"],
        "GITHUB_SHA": "0123456789abcdef0123456789abcdef01234567",
    }
    result = run_step_script(step["run"], cwd=tmp_path, env=env)
    assert result.returncode == 0, result.stderr
    payload = json.loads((tmp_path / "payload.json").read_text())
    assert payload["channel"] == answer(service, "slack_channel")
    assert env["RUN_URL"] in payload["text"]
    assert "0123456789ab" in payload["text"]
    assert not (tmp_path / "pwned").exists()
    env["SLACK_WEBHOOK_URL"] = ""
    result = run_step_script(step["run"], cwd=tmp_path, env=env)
    assert result.returncode == 1
    assert "SLACK_WEBHOOK_URL is not set" in result.stdout


# The image recipe and the task definition (static; tests/test_image_recipe.py runs the recipe).


def test_dockerfile_is_multi_stage_with_pinned_images(service: GeneratedService) -> None:
    froms = [
        args
        for keyword, args in dockerfile_instructions(service.path / "Dockerfile")
        if keyword == "FROM"
    ]
    python = re.escape(answer(service, "python_version"))
    assert froms[0] == "ghcr.io/astral-sh/uv:0.13.9 AS uv"
    assert re.fullmatch(rf"python:{python}\.\d+-slim-bookworm AS build", froms[1])
    assert re.fullmatch(rf"python:{python}\.\d+-slim-bookworm AS runtime", froms[2])
    assert len(froms) == 3


def test_dockerfile_installs_dependencies_before_the_source(service: GeneratedService) -> None:
    instructions = dockerfile_instructions(service.path / "Dockerfile")
    build = [f"{keyword} {args}" for keyword, args in instructions]
    deps = next(
        i
        for i, line in enumerate(build)
        if "uv sync --locked --no-install-project --no-dev" in line
    )
    project = next(
        i
        for i, line in enumerate(build)
        if line.endswith("uv sync --locked --no-dev --no-editable")
    )
    copy_lock = build.index("COPY pyproject.toml uv.lock ./")
    copy_src = build.index("COPY src/ src/")
    assert copy_lock < deps < copy_src < project
    for index in (deps, project):
        assert "--mount=type=cache,target=/root/.cache/uv" in build[index]
        assert (
            "--mount=type=secret,id=uv_index_password,env=UV_INDEX_PRIVATE_PASSWORD" in build[index]
        )
    env = " ".join(args for keyword, args in instructions if keyword == "ENV")
    assert "UV_COMPILE_BYTECODE=1" in env
    assert "UV_LINK_MODE=copy" in env


def test_dockerfile_never_stores_the_index_credentials(service: GeneratedService) -> None:
    for keyword, args in dockerfile_instructions(service.path / "Dockerfile"):
        if keyword in {"ARG", "ENV", "LABEL"}:
            assert not re.search(r"PASSWORD|TOKEN|SECRET|USERNAME", args, re.IGNORECASE), args
        if keyword == "RUN":
            assert "UV_INDEX_PRIVATE_PASSWORD=" not in args


def test_dockerfile_runtime_is_non_root_with_health_check_port_and_command(
    service: GeneratedService,
) -> None:
    instructions = dockerfile_instructions(service.path / "Dockerfile")
    runtime = instructions[max(i for i, (k, _) in enumerate(instructions) if k == "FROM") :]
    by_keyword: dict[str, list[str]] = {}
    for keyword, args in runtime:
        by_keyword.setdefault(keyword, []).append(args)
    assert by_keyword["USER"] == ["10001:10001"]
    assert by_keyword["EXPOSE"] == [answer(service, "http_port")]
    assert json.loads(by_keyword["CMD"][0]) == ["python", "-m", service.package_name]
    (healthcheck,) = by_keyword["HEALTHCHECK"]
    assert "/livez" in healthcheck
    assert "urllib.request" in healthcheck
    assert "curl" not in healthcheck
    copies = by_keyword["COPY"]
    assert copies[0] == "--from=build --chown=root:root /app/.venv /app/.venv"
    assert not any("src" in line for line in copies)
    if postgres(service):
        assert copies[1:] == [
            "--chown=root:root alembic.ini ./",
            "--chown=root:root migrations/ migrations/",
        ]
    else:
        assert copies[1:] == []


def test_dockerignore_keeps_local_state_out_and_what_the_build_copies_in(
    service: GeneratedService,
) -> None:
    patterns = [
        line
        for line in (service.path / ".dockerignore").read_text().splitlines()
        if line and line[0] != "#"
    ]
    for excluded in (".git/", ".venv/", ".env", "*.rej", "tests/", "**/__pycache__/"):
        assert excluded in patterns
    for copied in ("pyproject.toml", "uv.lock", "README.md", "src/", "alembic.ini", "migrations/"):
        assert not any(copied.rstrip("/") == pattern.rstrip("/") for pattern in patterns), copied


def task_definition(service: GeneratedService, environment: str = "staging") -> dict[str, Any]:
    text = (service.path / "infra" / "ecs" / "task-definition.json").read_text()
    document = json.loads(text.replace("__ENVIRONMENT__", environment))
    assert isinstance(document, dict)
    return document


def test_task_definition_runs_the_image_as_the_image_expects(service: GeneratedService) -> None:
    document = task_definition(service, "production")
    name, account, region = (
        answer(service, key) for key in ("service_name", "aws_account_id", "aws_region")
    )
    assert document["family"] == f"{name}-production"
    assert document["requiresCompatibilities"] == ["FARGATE"]
    assert document["networkMode"] == "awsvpc"
    assert (
        document["executionRoleArn"] == f"arn:aws:iam::{account}:role/{name}-production-execution"
    )
    (container,) = document["containerDefinitions"]
    assert container["name"] == name
    assert container["user"] == "10001:10001"
    assert container["readonlyRootFilesystem"] is True
    assert container["mountPoints"] == [
        {"sourceVolume": "tmp", "containerPath": "/tmp", "readOnly": False}  # noqa: S108
    ]
    assert container["portMappings"][0]["containerPort"] == int(answer(service, "http_port"))
    environment = {item["name"]: item["value"] for item in container["environment"]}
    assert environment["ENVIRONMENT"] == "production"
    assert environment["HTTP_PORT"] == answer(service, "http_port")
    secrets = {item["name"]: item["valueFrom"] for item in container["secrets"]}
    # The database password is the `password` key of the secret RDS manages, and DATABASE_URL holds
    # none: the deploy job fills in both from the Terraform outputs.
    database_password = secrets.pop("DATABASE_PASSWORD", None)
    assert set(secrets) == {"ACCOUNT_TOKEN_KEY", "INTERNAL_TOKEN_SECRET"}
    for value in secrets.values():
        assert value.startswith(
            f"arn:aws:secretsmanager:{region}:{account}:secret:{name}/production/"
        )
    if postgres(service):
        assert database_password == "__DATABASE_SECRET_ARN__:password::"
        assert environment["DATABASE_URL"] == "__DATABASE_URL__"
    else:
        assert database_password is None
        assert "DATABASE_URL" not in environment
    assert container["healthCheck"]["command"][:2] == ["CMD", "python"]
    assert "/livez" in container["healthCheck"]["command"][-1]
    logs = container["logConfiguration"]
    assert logs["logDriver"] == "awslogs"
    assert logs["options"]["awslogs-group"] == f"/ecs/{name}-production"
    assert logs["options"]["awslogs-region"] == region


def test_task_definition_health_check_is_the_image_health_check(service: GeneratedService) -> None:
    command = task_definition(service)["containerDefinitions"][0]["healthCheck"]["command"]
    healthcheck = next(
        args
        for keyword, args in dockerfile_instructions(service.path / "Dockerfile")
        if keyword == "HEALTHCHECK"
    )
    assert json.loads(healthcheck.split(" CMD ", 1)[1]) == command[1:]


def test_the_deploy_fills_every_placeholder_of_the_task_definition(
    service: GeneratedService, tmp_path: Path
) -> None:
    """The "Fill in the environment" step, run on the real file: valid JSON, nothing unfilled."""
    for environment in ("staging", "production"):
        job = workflow(service, "ci.yml")["jobs"][f"deploy-{environment}"]
        step = step_named(job, "Fill in the environment")
        env = {
            "PATH": tool_env()["PATH"],
            "RUNNER_TEMP": str(tmp_path),
            "DEPLOY_ENVIRONMENT": job["env"]["DEPLOY_ENVIRONMENT"],
            # What "Read the database's address" writes to $GITHUB_ENV (postgres only).
            "DATABASE_URL": "postgresql://svc_admin@db.example.internal:5432/svc?sslmode=require",
            "DATABASE_SECRET_ARN": "arn:aws:secretsmanager:us-east-1:1234:secret:rds!db-1-AbCdEf",
        }
        result = run_step_script(step["run"], cwd=service.path, env=env)
        assert result.returncode == 0, result.stderr
        text = (tmp_path / "task-definition.json").read_text()
        assert not re.findall(r"__[A-Z_]+__", text)
        (container,) = json.loads(text)["containerDefinitions"]
        variables = {item["name"]: item["value"] for item in container["environment"]}
        assert variables["ENVIRONMENT"] == environment
        secrets = {item["name"]: item["valueFrom"] for item in container["secrets"]}
        if postgres(service):
            assert variables["DATABASE_URL"] == env["DATABASE_URL"]
            assert secrets["DATABASE_PASSWORD"] == f"{env['DATABASE_SECRET_ARN']}:password::"


# pre-commit's configuration (tests/test_pre_commit.py runs it).


def test_pre_commit_hooks_are_all_local_and_run_the_locked_tools(service: GeneratedService) -> None:
    config = load_workflow(service.path / ".pre-commit-config.yaml")
    assert [repo["repo"] for repo in config["repos"]] == ["local"]
    hooks = {hook["id"]: hook for hook in config["repos"][0]["hooks"]}
    assert hooks["ruff-check"]["entry"].startswith("uv run --locked ruff check")
    assert hooks["ruff-format"]["entry"].startswith("uv run --locked ruff format")
    assert hooks["mypy"]["entry"] == "uv run --locked mypy"
    assert hooks["no-conflict-markers"]["language"] == "pygrep"
    assert hooks["no-conflict-markers"]["entry"] == "^(<<<<<<< |=======$|>>>>>>> )"
    assert hooks["no-rej-files"]["language"] == "fail"
    assert hooks["no-rej-files"]["files"] == r"\.(rej|team-edits)$"
    for hook in hooks.values():
        assert hook["language"] in {"system", "pygrep", "fail"}, hook["id"]


# template-update.yml


def test_template_update_runs_weekly_and_on_demand(service: GeneratedService) -> None:
    document = workflow(service, "template-update.yml")
    assert set(document["on"]) == {"schedule", "workflow_dispatch"}
    assert len(document["on"]["schedule"]) == 1
    job = document["jobs"]["update"]
    assert job["env"]["COPIER_VERSION"] == "9.19.1"
    check = step_named(job, "Check for a newer template version")
    assert "copier check-update --output-format json" in check["run"]
    assert check["env"]["TEMPLATE_REPO_TOKEN"] == "${{ secrets.TEMPLATE_REPO_TOKEN }}"
    update = step_named(job, "Update from the template")
    assert "copier update --trust --defaults --conflict inline" in update["run"]
    pull_request = step_named(job, "Open a pull request")
    assert "gh pr create" in pull_request["run"]
    assert "template-conflicts" in pull_request["run"]
    assert pull_request["env"]["GH_TOKEN"] == "${{ secrets.TEMPLATE_UPDATE_TOKEN || github.token }}"


class WorkflowStep:
    """Runs one step's `run:` script as GitHub's runner would (bash -eo pipefail), with its
    `env:` (expressions replaced from a table: an unknown one fails the test); returns what the
    step wrote to $GITHUB_OUTPUT."""

    def __init__(self, job: dict[str, Any], name: str, expressions: dict[str, str]) -> None:
        self.step = step_named(job, name)
        self.job = job
        self.expressions = expressions

    def resolve(self, value: object) -> str:
        text = str(value)
        for expression in re.findall(r"\$\{\{\s*(.*?)\s*\}\}", text):
            assert expression in self.expressions, f"no value for ${{{{ {expression} }}}}"
            text = re.sub(
                r"\$\{\{\s*" + re.escape(expression) + r"\s*\}\}",
                self.expressions[expression],
                text,
            )
        return text

    def __call__(self, cwd: Path, runner_temp: Path, path: str) -> dict[str, str]:
        output = runner_temp / f"output-{len(list(runner_temp.glob('output-*')))}"
        output.touch()
        env = tool_env(
            {
                "PATH": path,
                "RUNNER_TEMP": str(runner_temp),
                "GITHUB_OUTPUT": str(output),
                "GITHUB_REPOSITORY": "example/service",
                **{key: self.resolve(value) for key, value in self.job.get("env", {}).items()},
                **{key: self.resolve(value) for key, value in self.step.get("env", {}).items()},
            }
        )
        result = run_step_script(self.step["run"], cwd=cwd, env=env)
        assert result.returncode == 0, f"{self.step['name']}:\n{result.stdout}\n{result.stderr}"
        return dict(line.split("=", 1) for line in output.read_text().splitlines() if "=" in line)


@dataclass(frozen=True)
class UpdateScenario:
    tmp: Path
    template: Path
    """A clone of the template repository, to release a newer version into."""
    origin: Path
    """The service's repository, as GitHub holds it (bare)."""
    project: Path
    """The workflow's checkout of `origin`, its answers pointing at `template`."""
    bin: Path
    """Fake `uvx` and `gh`, first on the workflow's PATH."""
    next_tag: str
    """The tag of the template's next patch release."""


@pytest.fixture
def update_scenario(
    tmp_path: Path, services: ServiceCache, template_repo: Path, template_version: str
) -> UpdateScenario:
    """A clone of a generated service, a newer template release next to it, and fake `uvx`/`gh`."""
    generated = services.get()
    template = tmp_path / "template"
    git("clone", "--quiet", str(template_repo), str(template), cwd=tmp_path)
    origin = tmp_path / "origin.git"
    git("clone", "--quiet", "--bare", str(generated.path), str(origin), cwd=tmp_path)
    project = tmp_path / "project"
    git("clone", "--quiet", str(origin), str(project), cwd=tmp_path)
    answers_file = project / ".copier-answers.yml"
    answers = answers_file.read_text().replace(str(template_repo), str(template))
    answers_file.write_text(answers)
    git("commit", "--quiet", "-am", "Use the template clone", cwd=project)
    git("push", "--quiet", "origin", "HEAD", cwd=project)
    major, minor, patch = map(int, template_version.lstrip("v").split("."))
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    # uvx --from copier==X copier ...: the copier installed here (the same version).
    (bin_dir / "uvx").write_text(
        f'#!/bin/sh\n[ "$1" = --from ] && shift 2\nshift\nexec "{sys.executable}" -m copier "$@"\n'
    )
    (bin_dir / "gh").write_text(
        f'#!/bin/sh\necho "$@" >> "{tmp_path}/gh.log"\n'
        'case "$1" in api) exit 1 ;; esac\nexit 0\n'  # api: "no such branch"
    )
    for script in bin_dir.iterdir():
        script.chmod(0o755)
    (tmp_path / "runner").mkdir()
    return UpdateScenario(
        tmp=tmp_path,
        template=template,
        origin=origin,
        project=project,
        bin=bin_dir,
        next_tag=f"v{major}.{minor}.{patch + 1}",
    )


def run_update_workflow(scenario: UpdateScenario) -> tuple[dict[str, str], dict[str, str]]:
    project = scenario.project
    job = load_workflow(project / ".github" / "workflows" / "template-update.yml")["jobs"]["update"]
    path = f"{scenario.bin}:{tool_env()['PATH']}"
    runner = scenario.tmp / "runner"
    expressions = {
        "secrets.TEMPLATE_REPO_TOKEN": "",
        "github.event.repository.default_branch": "main",
    }
    check = WorkflowStep(job, "Check for a newer template version", expressions)(
        project, runner, path
    )
    if check["available"] != "true":
        return check, {}
    expressions |= {f"steps.check.outputs.{key}": value for key, value in check.items()}
    branch = WorkflowStep(
        job,
        "Look for an open update",
        {
            **expressions,
            "secrets.TEMPLATE_UPDATE_TOKEN || github.token": "fake-token",
        },
    )(project, runner, path)
    assert branch["exists"] == "false"
    update = WorkflowStep(job, "Update from the template", expressions)(project, runner, path)
    WorkflowStep(
        job,
        "Open a pull request",
        {
            **expressions,
            "secrets.TEMPLATE_UPDATE_TOKEN || github.token": "fake-token",
            "secrets.TEMPLATE_UPDATE_TOKEN != ''": "true",
            "steps.branch.outputs.name": branch["name"],
            **{f"steps.update.outputs.{key}": value for key, value in update.items()},
        },
    )(project, runner, path)
    return check, update


def release_template(template: Path, tag: str, change: str) -> None:
    dockerignore = template / "template" / ".dockerignore"
    dockerignore.write_text(dockerignore.read_text().replace("tests/\n", f"tests/\n{change}\n"))
    release(template, tag)


@pytest.mark.xdist_group("defaults")
def test_template_update_workflow_does_nothing_when_current(
    update_scenario: UpdateScenario,
) -> None:
    check, update = run_update_workflow(update_scenario)
    assert check["available"] == "false"
    assert update == {}


@pytest.mark.xdist_group("defaults")
def test_template_update_workflow_opens_a_clean_pull_request(
    update_scenario: UpdateScenario,
) -> None:
    tag = update_scenario.next_tag
    release_template(update_scenario.template, tag, "docs/")
    check, update = run_update_workflow(update_scenario)
    assert check["latest"] == tag.lstrip("v")
    assert update["conflicts"] == "false"
    branch = f"template-update/{tag.lstrip('v')}"
    pushed = git("show", f"{branch}:.dockerignore", cwd=update_scenario.origin)
    assert "tests/\ndocs/\n" in pushed
    log = (update_scenario.tmp / "gh.log").read_text()
    assert f"pr create --base main --head {branch}" in log
    assert "template-conflicts" not in log


@pytest.mark.xdist_group("defaults")
def test_template_update_workflow_labels_conflicts(update_scenario: UpdateScenario) -> None:
    tag = update_scenario.next_tag
    project = update_scenario.project
    dockerignore = project / ".dockerignore"
    dockerignore.write_text(dockerignore.read_text().replace("tests/\n", "tests/\nnotes/\n"))
    git("commit", "--quiet", "-am", "Keep notes out of the image", cwd=project)
    git("push", "--quiet", "origin", "HEAD", cwd=project)
    release_template(update_scenario.template, tag, "docs/")
    _, update = run_update_workflow(update_scenario)
    assert update["conflicts"] == "true"
    assert (update_scenario.tmp / "runner" / "conflicts.txt").read_text() == ".dockerignore\n"
    branch = f"template-update/{tag.lstrip('v')}"
    pushed = git("show", f"{branch}:.dockerignore", cwd=update_scenario.origin)
    assert "<<<<<<< " in pushed
    assert ">>>>>>> " in pushed
    log = (update_scenario.tmp / "gh.log").read_text()
    assert "label create template-conflicts" in log
    assert re.search(
        rf"pr create --base main --head {re.escape(branch)} .*--label template-conflicts", log
    )
    assert "notes/" in git("show", "main:.dockerignore", cwd=update_scenario.origin)
