"""A generated service's ci.yml (and deploy.yml through it) run as GitHub would, against fake
`aws`, `docker`, `terraform`, `curl`, `make` and `uv` that answer a healthy deploy
(tests/workflow_runner.py): what test_service_pipeline and test_background share."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.services import GeneratedService
from tests.tools import require_tool
from tests.workflow_runner import Call, FakeCommands, JobResult, WorkflowRunner, emulated_actions

COMMIT = "0123456789abcdef0123456789abcdef01234567"
DIGEST = "sha256:" + "d" * 64
TOKEN = "codeartifact-token-for-the-test"


def answer(service: GeneratedService, name: str) -> str:
    return str(service.answers[name])


def fake_aws(fakes: FakeCommands, service: GeneratedService) -> None:
    """What AWS answers a healthy deploy."""
    name, region, account = (
        answer(service, key) for key in ("service_name", "aws_region", "aws_account_id")
    )
    fakes.answer(r"^aws codeartifact get-authorization-token", TOKEN)
    fakes.answer(r"^docker run --rm \S+ id -u$", "10001\n")
    fakes.answer(r"^aws ecr get-login-password", "ecr-password")
    fakes.answer(r"^aws ecr describe-images ", "ImageNotFoundException", exit_code=254)
    fakes.answer(
        r"^aws ecr describe-images .*imageTag=" + COMMIT, f"{DIGEST}\n", after=r"^docker push"
    )
    network = {
        "awsvpcConfiguration": {
            "subnets": ["subnet-a", "subnet-b"],
            "securityGroups": ["sg-service"],
            "assignPublicIp": "DISABLED",
        }
    }
    fakes.answer(r"^aws ecs describe-services", json.dumps(network, indent=4) + "\n")
    fakes.answer(r"^aws ec2 describe-subnets --subnet-ids subnet-a ", "vpc-1\n")
    outputs = {
        "endpoint": {"value": f"{name}-db.abc.{region}.rds.amazonaws.com"},
        "port": {"value": 5432},
        "database_name": {"value": "service"},
        "master_user_secret_arn": {
            "value": f"arn:aws:secretsmanager:{region}:{account}:secret:rds!db-1"
        },
    }
    fakes.answer(r"^terraform -chdir=infra/terraform output -json", json.dumps(outputs))
    fakes.answer(
        r"^aws rds describe-db-instances --db-instance-identifier " + f"{name}-db ", "svc_admin\n"
    )
    fakes.answer(
        r"^aws ecs register-task-definition",
        f"arn:aws:ecs:{region}:{account}:task-definition/{name}:7\n",
    )
    fakes.answer(r"^aws ecs run-task", f"arn:aws:ecs:{region}:{account}:task/migrations-1\n")
    fakes.answer(r"^aws ecs describe-tasks", "0\tEssential container in task exited\n")


@dataclass
class PipelineRun:
    fakes: FakeCommands
    jobs: dict[str, JobResult]

    def calls(self, pattern: str = "") -> list[Call]:
        return self.fakes.calls(pattern)

    def index(self, pattern: str) -> int:
        """The position of the first call matching `pattern` among all calls."""
        return next(i for i, call in enumerate(self.calls()) if re.search(pattern, call.line))

    def rollouts(self) -> list[tuple[str, dict[str, Any]]]:
        """(ECS service, task definition) of every rollout, in order."""
        found = []
        for call in self.calls(r"^uses:aws-actions/amazon-ecs-deploy-task-definition"):
            inputs = dict(arg.split("=", 1) for arg in call.args)
            found.append((inputs["service"], json.loads(call.files[inputs["task-definition"]])))
        return found


def run_ci(  # noqa: PLR0913 - the parts of a run the tests vary
    service: GeneratedService,
    tmp_path: Path,
    *,
    event: str = "push",
    ref: str = "refs/heads/main",
    secrets: dict[str, str] | None = None,
    answers: dict[str, tuple[str, int]] | None = None,
    repository: str = "example/service",
    variables: dict[str, str] | None = None,
) -> PipelineRun:
    """ci.yml (and deploy.yml through it) on a push to main, or the event given; `answers` adds
    rules (pattern: (stdout, exit code)) over a healthy deploy's."""
    require_tool("jq", "install jq (Debian: apt-get install jq); GitHub's runners have it")
    fakes = FakeCommands(tmp_path / "fakes", ("aws", "docker", "terraform", "curl", "make", "uv"))
    fake_aws(fakes, service)
    for pattern, (stdout, exit_code) in (answers or {}).items():
        fakes.answer(pattern, stdout, exit_code)
    runner = WorkflowRunner(
        service.path,
        fakes,
        emulated_actions(),
        github={
            "sha": COMMIT,
            "ref": ref,
            "event_name": event,
            "repository": repository,
            "server_url": "https://github.com",
            "run_id": "4242",
            "workflow": "CI",
        },
        secrets={"SLACK_WEBHOOK_URL": "https://hooks.slack.invalid/T0/B0/x"}
        if secrets is None
        else secrets,
        variables=variables,
    )
    return PipelineRun(fakes, runner.run("ci.yml"))


def results(pipeline: PipelineRun) -> dict[str, str]:
    return {job_id: job.result for job_id, job in pipeline.jobs.items()}
