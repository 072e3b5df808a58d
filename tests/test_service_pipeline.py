"""The generated service's pipeline, image recipe and YAML, on every variant.

Each variant is rendered once (tasks skipped) and its workflows are checked with the standard tools
(the GitHub workflow and action schemas, zizmor, yamllint; hadolint for the Dockerfile), then RUN:
tests/workflow_runner.py walks the jobs and runs their scripts against fake `aws`, `docker`,
`terraform`, `curl`, `make`, `uv` and `gh` commands that record their calls, so what the pipeline
does (which image is pushed, which digest each environment deploys, migrations before the rollout,
Slack on a failure) is asserted from the calls. The template-update workflow is run against a real
`copier update`.
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

from harness.commands import git, run
from harness.generate import copy
from harness.template_repo import release
from tests.service_ci import (
    COMMIT,
    DIGEST,
    TOKEN,
    PipelineRun,
    answer,
    results,
    run_ci,
)
from tests.services import GeneratedService, ServiceCache
from tests.tools import (
    action_pins,
    assumes_a_role,
    dev_tool,
    dockerfile_instructions,
    load_workflow,
    workflow_steps,
    zizmor_findings,
)
from tests.workflow_runner import (
    FakeCommands,
    JobResult,
    WorkflowRunner,
    copier_for_uvx,
    emulated_actions,
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


def postgres(service: GeneratedService) -> bool:
    return answer(service, "database") == "postgres"


def github_files(service: GeneratedService) -> list[Path]:
    """The workflows and the composite actions."""
    github = service.path / ".github"
    return sorted([*github.glob("workflows/*.yml"), *github.glob("actions/*/action.yml")])


def workflow(service: GeneratedService, name: str) -> dict[str, Any]:
    return load_workflow(service.path / ".github" / "workflows" / name)


# The ecosystems' own checkers.


def test_the_workflows_and_actions_exist(service: GeneratedService) -> None:
    assert [str(path.relative_to(service.path)) for path in github_files(service)] == [
        ".github/actions/private-index/action.yml",
        ".github/workflows/ci.yml",
        ".github/workflows/core-bump.yml",
        ".github/workflows/deploy.yml",
        ".github/workflows/template-update.yml",
    ]


def test_workflows_and_actions_match_their_schemas(service: GeneratedService) -> None:
    workflows = [path for path in github_files(service) if path.parent.name == "workflows"]
    actions = [path for path in github_files(service) if path.name == "action.yml"]
    check_jsonschema = dev_tool("check-jsonschema")
    run([check_jsonschema, "--builtin-schema", "vendor.github-workflows", *workflows])
    run([check_jsonschema, "--builtin-schema", "vendor.github-actions", *actions])


def test_dependabot_config_matches_its_schema(service: GeneratedService) -> None:
    run(
        [
            dev_tool("check-jsonschema"),
            "--builtin-schema",
            "vendor.dependabot",
            service.path / ".github" / "dependabot.yml",
        ]
    )


def test_zizmor_finds_nothing(service: GeneratedService) -> None:
    """The workflows, the composite actions and the other configurations zizmor reads."""
    assert zizmor_findings(service.path, "workflows", "actions", "dependabot", "pre-commit") == []


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
            "--format=parsable",
            "--config-file=.yamllint.yaml",
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


# Rules every workflow and action keeps.


def test_every_action_is_pinned_to_a_commit_with_its_release_in_a_comment(
    service: GeneratedService,
) -> None:
    pins = action_pins(github_files(service))
    assert len(pins) >= 6
    assert {action: found for action, found in pins.items() if len(found) > 1} == {}


def test_no_dangerous_triggers_and_no_expressions_in_scripts(service: GeneratedService) -> None:
    for path in github_files(service):
        document = load_workflow(path)
        assert not {"pull_request_target", "workflow_run", "issue_comment"} & set(
            document.get("on", {})
        ), path.name
        steps = (
            [("runs", step) for step in document["runs"]["steps"]]
            if "runs" in document
            else list(workflow_steps(document))
        )
        for job_id, step in steps:
            # Values reach scripts through `env:` only, never spliced into the script text.
            assert "${{" not in str(step.get("run", "")), f"{path.name}: {job_id}"


def test_permissions_are_empty_by_default_and_least_privilege_per_job(
    service: GeneratedService,
) -> None:
    """Only reading the code, OIDC where a role is assumed, and writes for the update's pull
    request; no stored AWS key anywhere."""
    for path in github_files(service):
        text = path.read_text()
        for stored_key in ("aws-access-key-id", "aws-secret-access-key", "AWS_SECRET_ACCESS_KEY"):
            assert stored_key not in text, path.name
        if path.parent.name != "workflows":
            continue
        document = load_workflow(path)
        assert document["permissions"] == {}, path.name
        for job_id, job in document["jobs"].items():
            granted = dict(job["permissions"])
            assert (granted.pop("id-token", None) == "write") == assumes_a_role(
                service.path, job
            ), f"{path.name}: {job_id}"
            allowed = {"contents": "read"}
            if path.name in {"template-update.yml", "core-bump.yml"}:
                allowed = {"contents": "write", "pull-requests": "write"}
            assert granted.items() <= allowed.items(), f"{path.name}: {job_id}: {granted}"


def test_checkouts_keep_no_credentials_and_jobs_have_timeouts(service: GeneratedService) -> None:
    checkouts = 0
    for path in github_files(service):
        if path.parent.name != "workflows":
            continue
        for job_id, job in load_workflow(path)["jobs"].items():
            assert "uses" in job or job.get("timeout-minutes"), f"{path.name}: {job_id}"
        for job_id, step in workflow_steps(load_workflow(path)):
            if step.get("uses", "").startswith("actions/checkout@"):
                assert step["with"]["persist-credentials"] is False, f"{path.name}: {job_id}"
                checkouts += 1
    assert checkouts == 6


def test_the_tests_get_a_postgres_service_with_the_database_option(
    service: GeneratedService,
) -> None:
    job = workflow(service, "ci.yml")["jobs"]["checks"]
    if not postgres(service):
        assert "services" not in job
        return
    database = job["services"]["postgres"]
    assert re.fullmatch(r"postgres:\d+\.\d+-\w+", database["image"])
    assert "pg_isready" in database["options"]
    port = database["ports"][0].split(":")[0]
    assert job["env"]["TEST_DATABASE_URL"].startswith(
        f"postgresql://postgres:postgres@127.0.0.1:{port}/"
    )


# Running ci.yml: fake AWS, Docker, Terraform, Slack; real bash, jq and sed.


def test_a_pull_request_is_checked_and_built_but_not_deployed(
    service: GeneratedService, tmp_path: Path
) -> None:
    pipeline = run_ci(service, tmp_path, event="pull_request", ref="refs/pull/7/merge")
    assert results(pipeline) == {
        "checks": "success",
        "core-latest": "success",
        "image": "success",
        "deploy-staging": "skipped",
        "deploy-production": "skipped",
        "notify-failure": "skipped",
    }, pipeline.jobs
    assert [call.line for call in pipeline.calls(r"^make ")] == [
        "make install",
        "make check",
        "make openapi",
        "make core-latest",
    ]
    assert len(pipeline.calls(r"^docker buildx build")) == 1
    # The run's only artifact is the OpenAPI document, exported once the checks passed.
    (upload,) = pipeline.calls(r"^uses:actions/upload-artifact")
    assert {"name=openapi", "path=openapi.json", "if-no-files-found=error"} <= set(upload.args)
    assert pipeline.index(r"^make check") < pipeline.index(r"^make openapi")
    assert not pipeline.calls(r"^docker (save|push)|^curl .*slack")


def test_the_checks_install_from_the_lock_with_a_codeartifact_token_and_run_make_check(
    service: GeneratedService, tmp_path: Path
) -> None:
    pipeline = run_ci(service, tmp_path, event="pull_request", ref="refs/pull/7/merge")
    install, hooks, check = pipeline.calls(r"^make install|^uv run pre-commit|^make check")
    assert install.env == {"UV_INDEX_PRIVATE_PASSWORD": TOKEN, "UV_LOCKED": "1"} | (
        {"TEST_DATABASE_URL": check.env["TEST_DATABASE_URL"]} if postgres(service) else {}
    )
    assert hooks.args[:4] == ["run", "pre-commit", "run", "--all-files"]
    # The token stays with the steps that install; the tests get the database with the option.
    assert "UV_INDEX_PRIVATE_PASSWORD" not in check.env
    assert check.env["RUFF_OUTPUT_FORMAT"] == "github"
    assert ("TEST_DATABASE_URL" in check.env) == postgres(service)
    (core_latest,) = pipeline.calls(r"^make core-latest")
    assert core_latest.env == install.env
    # One token per job that installs: checks, core-latest and image; fetched for the domain of
    # the answers.
    fetches = pipeline.calls(r"^aws codeartifact get-authorization-token")
    assert len(fetches) == 3
    assert f"--domain {answer(service, 'codeartifact_domain')} " in fetches[0].line


def test_the_image_is_built_once_with_the_token_as_a_build_secret_and_smoke_tested(
    service: GeneratedService, tmp_path: Path
) -> None:
    pipeline = run_ci(service, tmp_path)
    (build,) = pipeline.calls(r"^docker buildx build")
    image = build.args[build.args.index("--tag") + 1]
    assert image == (
        f"{answer(service, 'aws_account_id')}.dkr.ecr.{answer(service, 'aws_region')}"
        f".amazonaws.com/{answer(service, 'service_name')}:{COMMIT}"
    )
    assert "--secret" in build.args
    assert build.env["UV_INDEX_PRIVATE_PASSWORD"] == TOKEN
    assert not any(TOKEN in arg for arg in build.args)
    runs = pipeline.calls(r"^docker run ")
    assert all(image in call.args for call in runs)
    assert all("--read-only" in call.args for call in runs[1:])
    (probe,) = pipeline.calls(r"^curl .*/livez")
    assert probe.args[-1] == f"http://127.0.0.1:{answer(service, 'http_port')}/livez"


def test_a_failed_smoke_test_fails_the_run_and_posts_to_slack(
    service: GeneratedService, tmp_path: Path
) -> None:
    pipeline = run_ci(service, tmp_path, answers={r"^curl .*/livez": ("", 7)})
    assert results(pipeline)["image"] == "failure"
    assert pipeline.calls(r"^docker logs smoke")
    assert results(pipeline)["deploy-staging"] == "skipped"
    assert len(pipeline.calls(r"^curl .*hooks\.slack")) == 1


def test_the_image_runs_as_a_non_root_user(service: GeneratedService, tmp_path: Path) -> None:
    pipeline = run_ci(service, tmp_path, answers={r"^docker run --rm \S+ id -u$": ("0\n", 0)})
    assert results(pipeline)["image"] == "failure"
    assert not pipeline.calls(r"^docker run --detach|^docker (save|push)")


def test_the_smoke_test_imports_every_module_of_the_image(
    service: GeneratedService, tmp_path: Path
) -> None:
    """The import check the smoke test runs in the image, run here against a stand-in package: it
    imports nested modules, and fails on an import of an undeclared dependency."""
    pipeline = run_ci(service, tmp_path, event="pull_request", ref="refs/pull/7/merge")
    (check,) = pipeline.calls(r"^docker run --rm --read-only \S+ python -c ")
    program = check.args[-1]
    package = tmp_path / service.package_name
    (package / "inner").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "inner" / "__init__.py").write_text("")
    (package / "inner" / "leaf.py").write_text("open('leaf-imported', 'w').close()\n")
    result = subprocess.run(  # noqa: S603 - the workflow's own Python
        [sys.executable, "-c", program], cwd=tmp_path, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "leaf-imported").exists()
    (package / "inner" / "broken.py").write_text("import not_a_declared_dependency\n")
    result = subprocess.run(  # noqa: S603 - the workflow's own Python
        [sys.executable, "-c", program], cwd=tmp_path, capture_output=True, text=True, check=False
    )
    assert result.returncode != 0
    assert "not_a_declared_dependency" in result.stderr


def test_main_pushes_the_tested_image_and_deploys_its_digest_to_staging_then_production(
    service: GeneratedService, tmp_path: Path
) -> None:
    pipeline = run_ci(service, tmp_path)
    assert set(results(pipeline).values()) == {"success", "skipped"}, pipeline.jobs
    assert results(pipeline)["notify-failure"] == "skipped"
    (build,) = pipeline.calls(r"^docker buildx build")
    tested = build.args[build.args.index("--tag") + 1]
    # The tested image is saved, handed to the deploy as an artifact, loaded and pushed as it is.
    (save,) = pipeline.calls(r"^docker save")
    assert save.args[-1] == tested
    (upload,) = [
        call
        for call in pipeline.calls(r"^uses:actions/upload-artifact")
        if "name=image" in call.args
    ]
    (download,) = pipeline.calls(r"^uses:actions/download-artifact")
    assert f"path={save.args[save.args.index('--output') + 1]}" in upload.args
    assert upload.args[upload.args.index("name=image")] in download.args
    (push,) = pipeline.calls(r"^docker push")
    assert push.args == ["push", tested]
    assert (
        pipeline.index(r"^docker load")
        < pipeline.index(r"^docker login")
        < pipeline.index(r"^docker push")
    )
    assert pipeline.calls(r"^docker login")[0].stdin == "ecr-password"
    # Each environment's ECS service runs that push's digest: production the one staging got.
    repository = tested.rsplit(":", 1)[0]
    name = answer(service, "service_name")
    deployed = [
        (service_name, task["containerDefinitions"][0]["image"])
        for service_name, task in pipeline.rollouts()
    ]
    assert deployed == [
        (f"{name}-staging", f"{repository}@{DIGEST}"),
        (f"{name}-production", f"{repository}@{DIGEST}"),
    ]
    assert pipeline.jobs["deploy-staging"].outputs == {"image": f"{repository}@{DIGEST}"}
    assert len(pipeline.calls(r"^docker push|^docker buildx")) == 2


def test_a_rerun_deploys_the_image_its_first_attempt_pushed(
    service: GeneratedService, tmp_path: Path
) -> None:
    """ECR tags may be immutable: a tag already pushed is deployed, not pushed again."""
    pipeline = run_ci(service, tmp_path, answers={r"^aws ecr describe-images ": (DIGEST, 0)})
    assert results(pipeline)["deploy-production"] == "success", pipeline.jobs
    assert not pipeline.calls(r"^docker (load|login|push)")
    assert {
        task["containerDefinitions"][0]["image"].split("@")[1] for _, task in pipeline.rollouts()
    } == {DIGEST}


def test_the_deploy_fills_every_placeholder_of_the_task_definition(
    service: GeneratedService, tmp_path: Path
) -> None:
    pipeline = run_ci(service, tmp_path)
    for environment, (_, task) in zip(("staging", "production"), pipeline.rollouts(), strict=True):
        text = json.dumps(task)
        assert not re.findall(r"__[A-Z_]+__", text)
        assert task["family"] == f"{answer(service, 'service_name')}-{environment}"
        container, _collector = task["containerDefinitions"]
        variables = {item["name"]: item["value"] for item in container["environment"]}
        assert variables["ENVIRONMENT"] == environment
        secrets = {item["name"]: item["valueFrom"] for item in container["secrets"]}
        if postgres(service):
            name, region = answer(service, "service_name"), answer(service, "aws_region")
            assert variables["DATABASE_URL"] == (
                f"postgresql://svc_admin@{name}-db.abc.{region}.rds.amazonaws.com:5432/service"
                "?sslmode=require"
            )
            assert secrets["DATABASE_PASSWORD"].endswith(":secret:rds!db-1:password::")
        else:
            assert "DATABASE_URL" not in variables


def test_the_database_is_applied_and_migrated_before_each_rollout(
    service: GeneratedService, tmp_path: Path
) -> None:
    pipeline = run_ci(service, tmp_path)
    if not postgres(service):
        assert not pipeline.calls(r"^terraform |alembic|^aws ecs run-task")
        return
    lines = [
        call.line
        for call in pipeline.calls(
            r"^terraform |^aws ecs run-task|^uses:aws-actions/amazon-ecs-deploy"
        )
    ]
    environment_steps = [
        r"^terraform -chdir=infra/terraform init ",
        r"^terraform -chdir=infra/terraform plan .*-out=tfplan",
        r"^terraform -chdir=infra/terraform apply .* tfplan$",
        r"^terraform -chdir=infra/terraform output -json",
        r"^aws ecs run-task ",
        r"^uses:aws-actions/amazon-ecs-deploy-task-definition",
    ]
    assert len(lines) == 2 * len(environment_steps), lines
    for line, pattern in zip(lines, environment_steps * 2, strict=True):
        assert re.search(pattern, line), (pattern, line)
    for environment, init in zip(
        ("staging", "production"), pipeline.calls(r"^terraform .* init "), strict=True
    ):
        assert f"key={answer(service, 'service_name')}/{environment}/database.tfstate" in init.line
    # The migrations run in the new task definition (the image to deploy), in the service's network.
    for register, migrate, (_, rolled_out) in zip(
        pipeline.calls(r"^aws ecs register-task-definition"),
        pipeline.calls(r"^aws ecs run-task"),
        pipeline.rollouts(),
        strict=True,
    ):
        (registered,) = register.files.values()
        assert json.loads(registered) == rolled_out
        overrides = json.loads(migrate.args[migrate.args.index("--overrides") + 1])
        assert overrides["containerOverrides"][0]["command"] == ["alembic", "upgrade", "head"]
        network = json.loads(migrate.args[migrate.args.index("--network-configuration") + 1])
        assert network["awsvpcConfiguration"]["subnets"] == ["subnet-a", "subnet-b"]


def test_a_failed_migration_stops_the_deploy_and_posts_to_slack(
    service: GeneratedService, tmp_path: Path
) -> None:
    failed = {r"^aws ecs describe-tasks": ("3\tEssential container exited\n", 0)}
    pipeline = run_ci(service, tmp_path, answers=failed)
    if not postgres(service):
        assert not pipeline.calls(r"^aws ecs describe-tasks")
        return
    assert results(pipeline)["deploy-staging"] == "failure"
    assert results(pipeline)["deploy-production"] == "skipped"
    assert pipeline.rollouts() == []
    assert "Migrations failed (exit code 3" in pipeline.jobs["deploy-staging"].log
    assert_slack_was_told(service, pipeline)


def assert_slack_was_told(
    service: GeneratedService, pipeline: PipelineRun, repository: str = "example/service"
) -> None:
    assert results(pipeline)["notify-failure"] == "success"
    (post,) = pipeline.calls(r"^curl .*hooks\.slack")
    assert post.args[-1] == "https://hooks.slack.invalid/T0/B0/x"
    payload = json.loads(post.stdin)
    assert payload["channel"] == answer(service, "slack_channel")
    assert COMMIT[:12] in payload["text"]
    assert f"https://github.com/{repository}/actions/runs/4242" in payload["text"]


def test_a_failed_push_posts_valid_json_to_slack_whatever_the_names(
    service: GeneratedService, tmp_path: Path
) -> None:
    """Quotes and shell syntax in the values cannot break the payload nor run anything."""
    repository = 'example/it\'s-"quoted"-$(touch pwned)'
    pipeline = run_ci(
        service,
        tmp_path,
        answers={r"^aws ecr get-login-password": ("", 255)},
        repository=repository,
    )
    assert results(pipeline)["deploy-staging"] == "failure"
    assert not pipeline.calls(r"^docker push")
    assert_slack_was_told(service, pipeline, repository)
    assert not (service.path / "pwned").exists()


def test_without_a_slack_webhook_the_report_fails_loudly(
    service: GeneratedService, tmp_path: Path
) -> None:
    pipeline = run_ci(service, tmp_path, secrets={}, answers={r"^make check": ("", 2)})
    assert results(pipeline)["checks"] == "failure"
    assert results(pipeline)["notify-failure"] == "failure"
    assert "SLACK_WEBHOOK_URL is not set" in pipeline.jobs["notify-failure"].log
    assert not pipeline.calls(r"^curl .*hooks")


# The image recipe and the task definition (static; tests/test_images.py builds and runs the image).


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
        assert "--mount=type=secret,id=uv_index_password,required=true" in build[index]
    env = " ".join(args for keyword, args in instructions if keyword == "ENV")
    assert "UV_COMPILE_BYTECODE=1" in env
    assert "UV_LINK_MODE=copy" in env


def test_dockerfile_never_stores_the_index_credentials(service: GeneratedService) -> None:
    """Nothing the image keeps names a credential (tests/test_images.py looks for the secret's value
    in the layers it builds)."""
    for keyword, args in dockerfile_instructions(service.path / "Dockerfile"):
        if keyword in {"ARG", "ENV", "LABEL"}:
            assert not re.search(r"PASSWORD|TOKEN|SECRET|USERNAME", args, re.IGNORECASE), args


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
    assert copies[1] == "--chown=root:root openapi.json ./"
    if postgres(service):
        assert copies[2:] == [
            "--chown=root:root alembic.ini ./",
            "--chown=root:root migrations/ migrations/",
        ]
    else:
        assert copies[2:] == []


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
    container, _collector = document["containerDefinitions"]
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


def test_task_definition_sends_traces_to_the_collector_beside_the_service(
    service: GeneratedService,
) -> None:
    """Traces go to the OpenTelemetry collector in the same task (on to X-Ray); metrics ride on
    the log lines (CloudWatch embedded metric format), so they need no collector."""
    container, collector = task_definition(service, "production")["containerDefinitions"]
    environment = {item["name"]: item["value"] for item in container["environment"]}
    assert environment["OTEL_EXPORTER_OTLP_ENDPOINT"] == "http://localhost:4318"
    assert environment["OTEL_RESOURCE_ATTRIBUTES"] == "deployment.environment.name=production"
    assert float(environment["TRACE_SAMPLE_RATIO"]) == 0.1
    assert environment["METRICS"] == "true"
    assert container["dependsOn"] == [{"containerName": "otel-collector", "condition": "START"}]
    assert collector["name"] == "otel-collector"
    assert re.fullmatch(
        r"public\.ecr\.aws/aws-observability/aws-otel-collector:v\d+\.\d+\.\d+", collector["image"]
    )
    assert collector["command"] == ["--config=/etc/ecs/ecs-xray.yaml"]
    # A collector that stops loses traces, never the service's requests.
    assert collector["essential"] is False
    assert collector["logConfiguration"]["options"]["awslogs-stream-prefix"] == "otel-collector"


def test_task_definition_health_check_is_the_image_health_check(service: GeneratedService) -> None:
    command = task_definition(service)["containerDefinitions"][0]["healthCheck"]["command"]
    healthcheck = next(
        args
        for keyword, args in dockerfile_instructions(service.path / "Dockerfile")
        if keyword == "HEALTHCHECK"
    )
    assert json.loads(healthcheck.split(" CMD ", 1)[1]) == command[1:]


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


# template-update.yml, run against a real `copier update`.


def test_template_update_runs_weekly_and_on_demand(service: GeneratedService) -> None:
    document = workflow(service, "template-update.yml")
    assert set(document["on"]) == {"schedule", "workflow_dispatch"}
    assert len(document["on"]["schedule"]) == 1
    assert document["jobs"]["update"]["env"]["COPIER_VERSION"] == "9.19.1"


@dataclass(frozen=True)
class UpdateScenario:
    tmp: Path
    template: Path
    """A clone of the template repository, to release a newer version into."""
    origin: Path
    """The service's repository, as GitHub holds it (bare)."""
    project: Path
    """The workflow's checkout of `origin`, its answers pointing at `template`."""
    fakes: FakeCommands
    """Fake `gh` and `aws`; `uvx` runs the copier installed here."""
    next_tag: str
    """The tag of the template's next patch release."""


@pytest.fixture
def update_scenario(
    tmp_path: Path, services: ServiceCache, template_repo: Path, template_version: str
) -> UpdateScenario:
    """A clone of a generated service, a newer template release next to it, and fake commands."""
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
    fakes = FakeCommands(tmp_path / "fakes", ("gh", "aws"))
    fakes.answer(r"^gh api ", exit_code=1)  # no such branch
    fakes.answer(r"^aws codeartifact get-authorization-token", TOKEN)
    copier_for_uvx(fakes)
    major, minor, patch = map(int, template_version.lstrip("v").split("."))
    return UpdateScenario(
        tmp=tmp_path,
        template=template,
        origin=origin,
        project=project,
        fakes=fakes,
        next_tag=f"v{major}.{minor}.{patch + 1}",
    )


def run_update_workflow(scenario: UpdateScenario) -> JobResult:
    runner = WorkflowRunner(
        scenario.project,
        scenario.fakes,
        emulated_actions(),
        github={
            "sha": COMMIT,
            "ref": "refs/heads/main",
            "event_name": "schedule",
            "repository": "example/service",
            "run_id": "4242",
            "token": "ghs_the_workflow_token",
            "event": {"repository": {"default_branch": "main"}},
        },
    )
    job = runner.run("template-update.yml")["update"]
    assert job.result == "success", job.log
    return job


LIVEZ_DESCRIPTION = "A meta-only JSON:API document."
NEW_LIVEZ_DESCRIPTION = "Whether the process answers: a meta-only JSON:API document."


def release_template(template: Path, tag: str, change: str) -> None:
    dockerignore = template / "template" / ".dockerignore"
    dockerignore.write_text(dockerignore.read_text().replace("tests/\n", f"tests/\n{change}\n"))
    release(template, tag)


@pytest.mark.xdist_group("defaults")
def test_template_update_workflow_does_nothing_when_current(
    update_scenario: UpdateScenario,
) -> None:
    run_update_workflow(update_scenario)
    assert not update_scenario.fakes.calls(r"^gh pr |^aws ")
    assert git("branch", "--list", cwd=update_scenario.origin).split() == ["*", "main"]


@pytest.mark.xdist_group("defaults")
def test_template_update_workflow_opens_a_clean_pull_request(
    update_scenario: UpdateScenario,
) -> None:
    """The release also changes what the service serves (a route's description): the pull
    request carries the OpenAPI document written again."""
    tag = update_scenario.next_tag
    health = update_scenario.template / "template" / "src" / "{{package_name}}" / "health.py.jinja"
    health.write_text(health.read_text().replace(LIVEZ_DESCRIPTION, NEW_LIVEZ_DESCRIPTION))
    release_template(update_scenario.template, tag, "docs/")
    run_update_workflow(update_scenario)
    branch = f"template-update/{tag.lstrip('v')}"
    pushed = git("show", f"{branch}:.dockerignore", cwd=update_scenario.origin)
    assert "tests/\ndocs/\n" in pushed
    document = json.loads(git("show", f"{branch}:openapi.json", cwd=update_scenario.origin))
    assert document["paths"]["/livez"]["get"]["description"] == NEW_LIVEZ_DESCRIPTION
    before = json.loads(git("show", "main:openapi.json", cwd=update_scenario.origin))
    assert before["paths"]["/livez"]["get"]["description"] == LIVEZ_DESCRIPTION
    (pull_request,) = update_scenario.fakes.calls(r"^gh pr create")
    assert pull_request.args[:6] == ["pr", "create", "--base", "main", "--head", branch]
    assert "--label" not in pull_request.args
    assert "applied cleanly" in pull_request.args[-1]
    assert not update_scenario.fakes.calls(r"^gh label")


@pytest.mark.xdist_group("defaults")
def test_template_update_workflow_labels_conflicts(update_scenario: UpdateScenario) -> None:
    tag = update_scenario.next_tag
    project = update_scenario.project
    dockerignore = project / ".dockerignore"
    dockerignore.write_text(dockerignore.read_text().replace("tests/\n", "tests/\nnotes/\n"))
    git("commit", "--quiet", "-am", "Keep notes out of the image", cwd=project)
    git("push", "--quiet", "origin", "HEAD", cwd=project)
    release_template(update_scenario.template, tag, "docs/")
    job = run_update_workflow(update_scenario)
    branch = f"template-update/{tag.lstrip('v')}"
    pushed = git("show", f"{branch}:.dockerignore", cwd=update_scenario.origin)
    assert "<<<<<<< " in pushed
    assert ">>>>>>> " in pushed
    assert update_scenario.fakes.calls(r"^gh label create template-conflicts ")
    (pull_request,) = update_scenario.fakes.calls(r"^gh pr create")
    assert pull_request.args[6:8] == ["--label", "template-conflicts"]
    assert "- `.dockerignore`" in pull_request.args[-1], job.log
    assert "notes/" in git("show", "main:.dockerignore", cwd=update_scenario.origin)
