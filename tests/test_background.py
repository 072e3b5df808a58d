"""Background work: queue workers and scheduled jobs in the generated services.

Two generated variants, each copied and installed once (ServiceCache) and shared by the tests of
its xdist group: a service with an API, a worker and PostgreSQL, and a project of jobs alone (no
HTTP API). Their own test suites run the worker as ECS does (`python -m orders worker`, on moto's
SQS server, SIGTERM at the end), and, on PostgreSQL, show a redelivered message doing its work
once. Here: their checks, a job's exit status, one trace from a request through the message it
sends to the worker's database statements (the spans decoded from OTLP's protobuf), the workloads'
files and answers, the Terraform, the deploy (run against fake `aws`/`docker`/`terraform`), an
update from a release before the question and `make reconfigure` adding a worker, and `make
worker` / `make job` in a workspace. The core's own loop is tested in core/tests/test_worker.py
and core/tests/test_jobs.py.
"""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from harness.commands import run, tool_env
from harness.generate import copy, update
from harness.postgres import free_port, fresh_database
from harness.serve import json_log_lines, serving
from harness.template_repo import release, snapshot
from harness.workspace import Workspace, generate_workspace
from smplcore import JSONAPI_MEDIA_TYPE
from smplcore.localsqs import LOCAL_CREDENTIALS, create_queue, sqs_server
from smplcore.testing import OtlpReceiver, ReceivedSpan, otlp_receiver
from tests.service_ci import DIGEST, PipelineRun, results, run_ci
from tests.services import ALEMBIC_UPGRADE, GeneratedService, ServiceCache, assert_pytest_green
from tests.terraform import CHECKOV, blocks
from tests.tools import dev_tool, require_tool, zizmor_findings
from tests.update_support import TeamWork, status

WORKER = {"workloads": "[api, worker]", "database": "postgres"}
JOBS = {"workloads": "[jobs]"}
EVERYTHING = {"workloads": "[api, worker, jobs]", "database": "postgres"}
XRAY_WRITE = "arn:aws:iam::aws:policy/AWSXrayWriteOnlyAccess"
"""What the collector beside a workload needs of its task role to send its traces."""
API_FILES = ("src/orders/app.py", "src/orders/api.py", "src/orders/widgets/routes.py")


WORKER_GROUP = pytest.mark.xdist_group("background-worker")
JOBS_GROUP = pytest.mark.xdist_group("background-jobs")


# The generated variants: their own checks.


@WORKER_GROUP
def test_a_service_with_a_worker_passes_its_checks_on_postgres(
    services: ServiceCache, database_url: str
) -> None:
    service = services.get(**WORKER)
    output = service.assert_checks_pass(env={"TEST_DATABASE_URL": database_url})
    for test in (
        "tests/test_worker.py::test_the_worker_handles_a_message_and_stops_cleanly_on_sigterm",
        "tests/test_processed_messages.py::test_a_redelivery_does_no_work",
        "tests/test_processed_messages.py::test_deliveries_handled_at_once_do_the_work_once",
        "tests/test_processed_messages.py::test_a_failed_delivery_records_nothing_so_the_next",
        "tests/test_handler.py::test_a_redelivered_message_is_recorded_once",
        "tests/test_widgets.py::",
    ):
        assert test in output, test


@JOBS_GROUP
def test_a_jobs_project_passes_its_checks_and_has_no_api(services: ServiceCache) -> None:
    service = services.get(**JOBS)
    output = service.assert_checks_pass()
    assert "tests/test_jobs.py::test_every_job_has_a_schedule_and_every_schedule_a_job" in output
    assert not [path for path in API_FILES if (service.path / path).exists()]
    pyproject = (service.path / "pyproject.toml").read_text()
    assert "fastapi" not in pyproject
    assert "uvicorn" not in pyproject


FAILING_JOB = """\
import sys

from orders import jobs
from orders.__main__ import main


async def broken(run):
    raise RuntimeError("the ledger is gone")


jobs.JOBS["broken"] = broken
sys.exit(main(["job", sys.argv[1]]))
"""


@JOBS_GROUP
def test_a_job_run_logs_one_line_is_traced_and_exits_with_its_status(
    services: ServiceCache, tmp_path: Path
) -> None:
    service = services.get(**JOBS)
    script = tmp_path / "run_job.py"
    script.write_text(FAILING_JOB)

    def run_job(name: str, traces: str) -> tuple[int, dict[str, Any], list[dict[str, Any]]]:
        """The run's exit status, its line, and every line it wrote."""
        # Traced as its task definition runs it: every run recorded (spans sent at exit).
        env = {"OTEL_EXPORTER_OTLP_ENDPOINT": traces, "TRACE_SAMPLE_RATIO": "1"}
        result = service.run(
            "uv", "run", "--locked", "python", str(script), name, env=env, check=False
        )
        lines = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
        [run_line] = [line for line in lines if line["logger"] == "smplcore.jobs"]
        return result.returncode, run_line, lines

    with otlp_receiver() as receiver:
        status, line, lines = run_job("nightly-report", receiver.endpoint)
        assert status == 0
        assert (line["job"], line["outcome"], line["exit_status"]) == (
            "nightly-report",
            "succeeded",
            0,
        )
        assert re.fullmatch(r"[0-9a-f]{32}", line["run_id"])
        assert line["service"] == "orders"
        assert line["duration_ms"] >= 0
        [reported] = receiver.wait_for(lambda spans: len(spans) == 1)
        assert (reported.name, reported.attributes["job.run_id"]) == (
            "job nightly-report",
            line["run_id"],
        )
        # The run's line and the job's own carry the run's trace.
        assert len(lines) == 2
        assert {(line["trace_id"], line["span_id"]) for line in lines} == {
            (reported.trace_id, reported.span_id)
        }

        status, line, _ = run_job("broken", receiver.endpoint)
        assert status == 1
        assert (line["outcome"], line["error"], line["level"]) == (
            "failed",
            "RuntimeError",
            "error",
        )
        assert "the ledger is gone" in line["exception"]
        spans = {span.name: span for span in receiver.wait_for(lambda spans: len(spans) == 2)}
        broken = spans["job broken"]
        assert (broken.failed, broken.trace_id) == (True, line["trace_id"])

    unknown = service.run(
        "uv", "run", "--locked", "python", "-m", "orders", "job", "x", check=False
    )
    assert unknown.returncode == 2
    assert "invalid choice: 'x'" in unknown.stderr
    assert "nightly-report" in unknown.stderr


# One trace: a request, the message it sends, the worker's handling, and their statements.


ENQUEUE = """\
\"\"\"The team's route that hands work to the worker, as its README shows.\"\"\"

from typing import Any

from aiobotocore.session import get_session
from fastapi import APIRouter, FastAPI
from smplcore.worker import send_message

from orders.app import create_app as create_service
from orders.settings import get_settings

router = APIRouter()


@router.post("/v1/widget-requests")
async def request_widget() -> dict[str, Any]:
    settings = get_settings()
    async with get_session().create_client(
        "sqs", region_name=settings.aws_region, endpoint_url=settings.sqs_endpoint_url
    ) as sqs:
        body = '{"account_id": "acct-1", "name": "first"}'
        return {"meta": {"message_id": await send_message(sqs, settings.queue_url, body)}}


def create_app() -> FastAPI:
    app = create_service()
    app.include_router(router)
    return app
"""


@dataclass
class Traced:
    """The API and the worker of one service, running; where their lines and spans go."""

    api_url: str
    worker_log: Path
    receiver: OtlpReceiver


@contextmanager
def api_and_worker(service: GeneratedService, database_url: str, folder: Path) -> Iterator[Traced]:
    """The API (with the route above) and the worker, as their containers run them, on one fresh
    PostgreSQL database and moto's SQS, both traced as on ECS, every trace recorded; the worker
    stopped with SIGTERM at the end."""
    (folder / "enqueue.py").write_text(ENQUEUE)
    with ExitStack() as stack:
        receiver = stack.enter_context(otlp_receiver())
        sqs_endpoint = stack.enter_context(sqs_server())
        queue = asyncio.run(create_queue(sqs_endpoint, "orders"))
        database = stack.enter_context(fresh_database(database_url))
        env = {
            **service.env,
            **LOCAL_CREDENTIALS,
            "DATABASE_URL": database,
            "QUEUE_URL": queue.url,
            "SQS_ENDPOINT_URL": sqs_endpoint,
            "TRACE_SAMPLE_RATIO": "1",
            "OTEL_BSP_SCHEDULE_DELAY": "100",  # the SDK's batch delay (ms): spans come quickly
        }
        worker_log = folder / "worker.log"
        worker_env = {**env, "OTEL_EXPORTER_OTLP_ENDPOINT": f"{receiver.endpoint}/worker"}
        with worker_log.open("w") as output:  # it starts while the database is migrated
            worker = subprocess.Popen(
                ["uv", "run", "--locked", "python", "-m", "orders", "worker"],
                cwd=service.path,
                env=tool_env(worker_env),
                stdout=output,
                stderr=subprocess.STDOUT,
            )
        stack.callback(worker.wait, timeout=60)
        stack.callback(worker.terminate)
        service.run(*ALEMBIC_UPGRADE, env={"DATABASE_URL": database})
        port = free_port()
        api = ["uv", "run", "--locked", "uvicorn", "enqueue:create_app", "--factory"]
        api += ["--port", str(port), "--no-access-log"]
        api_env = {**env, "PYTHONPATH": str(folder)}
        api_env["OTEL_EXPORTER_OTLP_ENDPOINT"] = f"{receiver.endpoint}/api"
        api_url = f"http://127.0.0.1:{port}"
        api_log = folder / "api.log"
        stack.enter_context(
            serving(api, cwd=service.path, env=tool_env(api_env), base_url=api_url, log=api_log)
        )
        yield Traced(api_url, worker_log, receiver)


def worker_lines(traced: Traced, message_id: str) -> list[dict[str, Any]]:
    """The worker's log lines, once it has written the message's line."""
    deadline = time.monotonic() + 60
    while True:
        lines = json_log_lines(traced.worker_log)
        if any(line.get("message_id") == message_id for line in lines):
            return lines
        assert time.monotonic() < deadline, traced.worker_log.read_text()
        time.sleep(0.1)


def children(spans: list[ReceivedSpan], parent: ReceivedSpan) -> list[ReceivedSpan]:
    return [span for span in spans if span.parent_span_id == parent.span_id]


def whole(spans: list[ReceivedSpan]) -> bool:
    """The worker's span and its statements have come."""
    processed = [span for span in spans if span.kind == "CONSUMER"]
    return len(processed) == 1 and len(children(spans, processed[0])) >= 2


@WORKER_GROUP
def test_a_request_the_message_it_sends_and_their_queries_are_one_trace(
    services: ServiceCache, database_url: str, tmp_path: Path
) -> None:
    service = services.get(**WORKER)
    with api_and_worker(service, database_url, tmp_path) as traced:
        headers = {"Authorization": f"Bearer {service.account_token()}"}
        headers |= {"Accept": JSONAPI_MEDIA_TYPE, "Content-Type": JSONAPI_MEDIA_TYPE}
        widget = {"data": {"type": "widgets", "attributes": {"name": "first"}}}
        created = httpx.post(f"{traced.api_url}/v1/widgets", json=widget, headers=headers)
        assert created.status_code == 201, created.text
        sent = httpx.post(f"{traced.api_url}/v1/widget-requests", headers=headers)
        assert sent.status_code == 200, sent.text
        message_id = sent.json()["meta"]["message_id"]
        lines = worker_lines(traced, message_id)
        spans = traced.receiver.wait_for(whole)

    requests = {span.name: span for span in spans if span.kind == "SERVER"}
    # The widget's creation: its statement is a child of its request.
    [insert] = children(spans, requests["POST /v1/widgets"])
    assert (insert.kind, insert.attributes["db.system.name"]) == ("CLIENT", "postgresql")
    assert insert.name == f"INSERT {insert.attributes['db.namespace']}"
    assert "INSERT INTO widgets" in insert.attributes["db.query.text"]
    assert "first" not in insert.attributes["db.query.text"]  # values stay parameters
    # The request that sent work, the send, the worker's handling, its statements: one trace.
    request = requests["POST /v1/widget-requests"]
    [send] = children(spans, request)
    [processed] = children(spans, send)
    assert (send.sender, send.kind, send.name) == ("/api", "PRODUCER", "send orders")
    assert (processed.sender, processed.kind) == ("/worker", "CONSUMER")
    assert processed.name == "process orders"
    assert processed.attributes["messaging.message.id"] == message_id
    statements = children(spans, processed)
    assert {span.attributes["db.system.name"] for span in statements} == {"postgresql"}
    assert any("processed_messages" in span.attributes["db.query.text"] for span in statements)
    assert {span.trace_id for span in (request, send, processed, *statements)} == {request.trace_id}
    # The message's line and the handler's own carry the worker's span.
    of_message = [
        line
        for line in lines
        if line.get("message_id") == message_id or line["event"].startswith("widget 'first'")
    ]
    assert len(of_message) == 2, lines
    assert {(line["trace_id"], line["span_id"]) for line in of_message} == {
        (request.trace_id, processed.span_id)
    }


# The answers and the files each workload brings (rendered only).


def relative_files(service: GeneratedService) -> set[str]:
    return {str(path.relative_to(service.path)) for path in service.files()}


def test_the_default_is_the_api_alone(render: Callable[..., GeneratedService]) -> None:
    service = render()
    files = relative_files(service)
    assert service.answers["workloads"] == ["api"]  # type: ignore[comparison-overlap]
    assert set(API_FILES) <= files
    assert not {"src/orders/handler.py", "src/orders/jobs.py"} & files
    assert not [path for path in files if path.startswith("infra/terraform/")]
    assert 'CMD ["python", "-m", "orders"]' in (service.path / "Dockerfile").read_text()


def test_a_worker_alone_has_no_api(render: Callable[..., GeneratedService]) -> None:
    service = render(workloads="[worker]")
    files = relative_files(service)
    assert not [path for path in API_FILES if path in files]
    assert {
        "src/orders/handler.py",
        "tests/test_handler.py",
        "tests/test_worker.py",
        "infra/ecs/worker-task-definition.json",
        "infra/terraform/queue.tf",
    } <= files
    assert "infra/ecs/task-definition.json" not in files
    dockerfile = (service.path / "Dockerfile").read_text()
    assert 'CMD ["python", "-m", "orders", "worker"]' in dockerfile
    assert "HEALTHCHECK" not in dockerfile
    assert "EXPOSE" not in dockerfile
    assert "http_port" not in service.answers
    makefile = (service.path / "Makefile").read_text()
    assert "worker-run:" in makefile
    assert "\nrun:" not in makefile


@pytest.mark.parametrize(
    ("workloads", "message"),
    [("[]", "workloads needs at least one of api, worker, jobs"), ("[cron]", "Invalid choice")],
    ids=["none", "unknown"],
)
def test_a_bad_workloads_answer_is_refused_and_nothing_is_written(
    workloads: str, message: str, template_repo: Path, tmp_path: Path
) -> None:
    destination = tmp_path / "orders"
    result = copy(template_repo, destination, {"workloads": workloads}, check=False)
    assert result.returncode != 0
    assert message in result.stderr
    assert not destination.exists()


def task_definition(service: GeneratedService, name: str) -> dict[str, Any]:
    definition: dict[str, Any] = json.loads((service.path / "infra/ecs" / name).read_text())
    return definition


def test_every_task_definition_runs_the_same_image_with_its_own_command_and_role(
    render: Callable[..., GeneratedService],
) -> None:
    service = render(**EVERYTHING)
    api = task_definition(service, "task-definition.json")
    worker = task_definition(service, "worker-task-definition.json")
    job = task_definition(service, "job-task-definition.json")
    images = {d["containerDefinitions"][0]["image"] for d in (api, worker, job)}
    assert len(images) == 1
    assert [d["family"] for d in (api, worker, job)] == [
        "orders-__ENVIRONMENT__",
        "orders-worker-__ENVIRONMENT__",
        "orders-job-__ENVIRONMENT__",
    ]
    assert worker["taskRoleArn"].endswith(":role/orders-__ENVIRONMENT__-worker")
    assert job["taskRoleArn"].endswith(":role/orders-__ENVIRONMENT__-job")
    container, worker_collector = worker["containerDefinitions"]
    assert container["command"] == ["python", "-m", "orders", "worker"]
    assert "portMappings" not in container
    assert "healthCheck" not in container
    environment = {item["name"]: item["value"] for item in container["environment"]}
    assert environment["QUEUE_URL"] == (
        "https://sqs.us-east-1.amazonaws.com/123456789012/orders-__ENVIRONMENT__"
    )
    # SIGTERM, then 30 s before SIGKILL: the worker's stop timeout (25 s) fits inside.
    assert container["stopTimeout"] == 30
    job_container, job_collector = job["containerDefinitions"]
    assert job_container["command"] == ["python", "-m", "orders", "job"]
    # Traced as the API is: the same collector beside each, on localhost; every job run recorded.
    api_collector = api["containerDefinitions"][1]
    for app, collector in ((container, worker_collector), (job_container, job_collector)):
        assert {**collector, "logConfiguration": None} == {
            **api_collector,
            "logConfiguration": None,
        }
        assert (collector["name"], collector["essential"]) == ("otel-collector", False)
        assert app["dependsOn"] == [{"containerName": "otel-collector", "condition": "START"}]
        assert (
            collector["logConfiguration"]["options"]["awslogs-group"]
            == (app["logConfiguration"]["options"]["awslogs-group"])
        )
    ratios = [
        {item["name"]: item["value"] for item in app["environment"]}["TRACE_SAMPLE_RATIO"]
        for app in (container, job_container)
    ]
    assert ratios == ["0.1", "1"]
    assert environment["OTEL_EXPORTER_OTLP_ENDPOINT"] == "http://localhost:4318"


# The Terraform: formatted, clean under checkov, and what it builds.


@pytest.fixture(scope="module")
def everything(tmp_path_factory: pytest.TempPathFactory, template_repo: Path) -> Path:
    destination = tmp_path_factory.mktemp("everything") / "orders"
    copy(template_repo, destination, EVERYTHING, skip_tasks=True)
    return destination


@pytest.fixture(scope="module")
def jobs_alone(tmp_path_factory: pytest.TempPathFactory, template_repo: Path) -> Path:
    destination = tmp_path_factory.mktemp("jobs") / "orders"
    copy(template_repo, destination, JOBS, skip_tasks=True)
    return destination


def test_the_terraform_is_formatted_and_checkov_finds_nothing(
    everything: Path, jobs_alone: Path
) -> None:
    modules = [service / "infra" / "terraform" for service in (everything, jobs_alone)]
    terraform = require_tool(
        "terraform", "install Terraform >= 1.6 (https://developer.hashicorp.com/terraform/install)"
    )
    run([terraform, "fmt", "-check", "-diff", "-recursive", *map(str, modules)])
    directories = [arg for module in modules for arg in ("--directory", str(module))]
    result = run(
        ["uv", "tool", "run", "--from", CHECKOV, "checkov", *directories,
         "--framework", "terraform", "--compact", "--skip-download", "--output", "cli"],
        check=False,
    )  # fmt: skip
    summary = re.search(r"Passed checks: (\d+), Failed checks: (\d+)", result.stdout)
    assert summary, result.stdout + result.stderr
    assert int(summary.group(2)) == 0, result.stdout
    skips = re.findall(
        r"checkov:skip=([A-Z0-9_]+)(?::(.*))?",
        "\n".join(path.read_text() for module in modules for path in module.glob("*.tf")),
    )
    assert all(reason and reason.strip() for _, reason in skips), skips


def test_the_queue_is_encrypted_and_dead_letters_after_max_receives_with_an_alarm(
    everything: Path,
) -> None:
    resources = blocks(everything / "infra" / "terraform", "resource")
    work, dead = resources["aws_sqs_queue.work"], resources["aws_sqs_queue.dead_letter"]
    for queue in (work, dead):
        assert queue["kms_master_key_id"] == "${aws_kms_key.background.arn}"
    assert resources["aws_kms_key.background"]["enable_key_rotation"] is True
    redrive = work["redrive_policy"]
    assert "aws_sqs_queue.dead_letter.arn" in redrive
    assert "var.max_receive_count" in redrive
    alarm = resources["aws_cloudwatch_metric_alarm.dead_letters"]
    assert alarm["dimensions"] == {"QueueName": "${aws_sqs_queue.dead_letter.name}"}
    assert (alarm["metric_name"], alarm["threshold"]) == ("ApproximateNumberOfMessagesVisible", 0)
    target = resources["aws_cloudwatch_event_target.dead_letters"]
    assert target["arn"] == "${aws_cloudwatch_event_api_destination.slack.arn}"
    assert "var.slack_channel" in target["input_transformer"][0]["input_template"]


def test_the_worker_role_only_consumes_its_own_queue(everything: Path) -> None:
    module = everything / "infra" / "terraform"
    consume = blocks(module, "data")["aws_iam_policy_document.consume"]["statement"]
    assert [statement["resources"] for statement in consume] == [
        ["${aws_sqs_queue.work.arn}"],
        ["${aws_kms_key.background.arn}"],
    ]
    assert set(consume[0]["actions"]) == {
        "sqs:ReceiveMessage",
        "sqs:DeleteMessage",
        "sqs:ChangeMessageVisibility",
        "sqs:GetQueueAttributes",
    }
    resources = blocks(module, "resource")
    assert resources["aws_iam_role_policy.worker_consumes"]["role"] == "${aws_iam_role.worker.id}"
    traces = resources["aws_iam_role_policy_attachment.worker_traces"]
    assert (traces["role"], traces["policy_arn"]) == ("${aws_iam_role.worker.name}", XRAY_WRITE)
    # The API and the jobs may send work, nothing more.
    send = blocks(module, "data")["aws_iam_policy_document.send"]["statement"]
    assert send[0]["actions"] == ["sqs:SendMessage"]
    assert resources["aws_iam_role_policy.api_sends"]["role"] == "${local.identifier}-task"


def test_each_job_is_scheduled_as_an_ecs_task_of_the_newest_revision(jobs_alone: Path) -> None:
    module = jobs_alone / "infra" / "terraform"
    resources = blocks(module, "resource")
    schedule = resources["aws_scheduler_schedule.job"]
    assert schedule["for_each"] == "${var.jobs}"
    assert schedule["schedule_expression"] == "${each.value.schedule}"
    assert schedule["kms_key_arn"] == "${aws_kms_key.background.arn}"
    [target] = schedule["target"]
    assert '"job", each.key' in (module / "jobs.tf").read_text()
    [ecs] = target["ecs_parameters"]
    # The family without a revision: each run takes the revision the last deploy registered.
    assert ecs["task_definition_arn"] == "${local.job_task_definition}"
    assert ecs["launch_type"] == "FARGATE"
    [network] = ecs["network_configuration"]
    assert network["assign_public_ip"] is False
    text = (module / "jobs.tf").read_text()
    assert 'task-definition/${local.job_family}"' in text
    # The scheduler runs only the jobs' family, in the service's cluster, handing only its roles.
    run_jobs = blocks(module, "data")["aws_iam_policy_document.run_jobs"]["statement"]
    assert run_jobs[0]["resources"] == [
        "${local.job_task_definition}",
        "${local.job_task_definition}:*",
    ]
    assert run_jobs[0]["condition"][0]["variable"] == "ecs:cluster"
    assert run_jobs[1]["actions"] == ["iam:PassRole"]
    assert run_jobs[1]["condition"][0]["values"] == ["ecs-tasks.amazonaws.com"]
    traces = resources["aws_iam_role_policy_attachment.job_traces"]
    assert (traces["role"], traces["policy_arn"]) == ("${aws_iam_role.job.name}", XRAY_WRITE)
    # A run that fails is posted to the service's Slack channel.
    failed = resources["aws_cloudwatch_event_rule.job_failed"]["event_pattern"]
    assert "anything-but" in failed
    assert "TaskFailedToStart" in failed
    schedules = json.loads((module / "jobs.auto.tfvars.json").read_text())["jobs"]
    assert schedules == {
        "nightly-report": {
            "schedule": "cron(0 3 * * ? *)",
            "description": "The example job (src/orders/jobs.py): every day at 03:00 UTC",
        }
    }


# The deploy: one image for every workload, migrations first.


@pytest.mark.parametrize("name", ["everything", "jobs_alone"])
def test_the_workflows_and_answers_are_clean_under_zizmor_and_yamllint(
    name: str, request: pytest.FixtureRequest
) -> None:
    service: Path = request.getfixturevalue(name)
    assert zizmor_findings(service, "workflows", "actions") == []
    yamllint = [dev_tool("yamllint"), "--strict", "--format=parsable", "."]
    assert run(yamllint, cwd=service, check=False).stdout == ""  # the answers' list included


def test_the_deploy_migrates_then_rolls_out_the_api_the_worker_and_the_jobs_from_one_digest(
    everything: Path, tmp_path: Path
) -> None:
    pipeline = run_ci(GeneratedService(everything), tmp_path)
    assert set(results(pipeline).values()) == {"success", "skipped"}, pipeline.jobs
    steps = [
        r"^terraform -chdir=infra/terraform apply ",
        r"^aws ecs run-task ",
        r"^uses:aws-actions/amazon-ecs-deploy-task-definition .*service=orders-staging",
        r"^uses:aws-actions/amazon-ecs-deploy-task-definition .*service=orders-worker-staging",
        r"^aws ecs register-task-definition .*job-task-definition",
    ]
    positions = [pipeline.index(step) for step in steps]
    assert positions == sorted(positions), positions
    rolled = [(service, task["family"]) for service, task in pipeline.rollouts()]
    assert rolled == [
        ("orders-staging", "orders-staging"),
        ("orders-worker-staging", "orders-worker-staging"),
        ("orders-production", "orders-production"),
        ("orders-worker-production", "orders-worker-production"),
    ]
    jobs = [
        json.loads(next(iter(call.files.values())))
        for call in pipeline.calls(r"^aws ecs register-task-definition .*job-task-definition")
    ]
    assert [job["family"] for job in jobs] == ["orders-job-staging", "orders-job-production"]
    images = {task["containerDefinitions"][0]["image"] for _, task in pipeline.rollouts()}
    images |= {job["containerDefinitions"][0]["image"] for job in jobs}
    assert {image.rsplit("@", 1)[1] for image in images} == {DIGEST}
    assert len(images) == 1
    for apply in pipeline.calls(r"^terraform -chdir=infra/terraform plan"):
        assert apply.env.get("TF_VAR_slack_webhook_url") == "https://hooks.slack.invalid/T0/B0/x"


def jobs_pipeline(service: Path, tmp_path: Path, variables: dict[str, str]) -> PipelineRun:
    return run_ci(GeneratedService(service), tmp_path, variables=variables)


def test_a_jobs_project_deploys_in_the_network_its_environment_names(
    jobs_alone: Path, tmp_path: Path
) -> None:
    network = {"SUBNET_IDS": '["subnet-a", "subnet-b"]', "SECURITY_GROUP_ID": "sg-jobs"}
    pipeline = jobs_pipeline(jobs_alone, tmp_path / "named", network)
    assert results(pipeline)["deploy-production"] == "success", pipeline.jobs
    assert pipeline.rollouts() == []
    assert not pipeline.calls(r"^aws ecs describe-services")
    assert len(pipeline.calls(r"^aws ecs register-task-definition .*job-task-definition")) == 2
    for plan in pipeline.calls(r"^terraform -chdir=infra/terraform plan"):
        assert plan.env.get("TF_VAR_service_security_group_id") == "sg-jobs"

    pipeline = jobs_pipeline(jobs_alone, tmp_path / "unnamed", {})
    assert results(pipeline)["deploy-staging"] == "failure"
    assert (
        "Set SUBNET_IDS (a JSON list) and SECURITY_GROUP_ID" in pipeline.jobs["deploy-staging"].log
    )
    assert not pipeline.calls(r"^terraform ")


# Updates: from a release before the question, and `make reconfigure`.


@pytest.fixture(scope="module")
def releases(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """v1.0.0, released before `workloads` existed (its services record no answer for it, and
    get the API alone), and v1.1.0, this template."""
    repository = snapshot(tmp_path_factory.mktemp("releases") / "template", tag="v1.1.0")
    run(["git", "tag", "--delete", "v1.1.0"], cwd=repository)
    copier_yml = repository / "copier.yml"
    current = copier_yml.read_text()
    asked = "workloads:\n  type: str\n  when: \"{{ layout == 'service' }}\""
    assert asked in current
    copier_yml.write_text(current.replace(asked, "workloads:\n  type: str\n  when: false"))
    release(repository, "v1.0.0")
    copier_yml.write_text(current)
    release(repository, "v1.1.0")
    return repository


def generate_without_tasks(
    template: Path, service: Path, answers: dict[str, str], version: str
) -> None:
    """`copier copy` of a release, committed as the post-copy task would (no `uv lock`: the
    updates here change files and answers, which a lock does not take part in)."""
    copy(template, service, answers, vcs_ref=version, skip_tasks=True)
    for command in (["git", "init", "--quiet"], ["git", "add", "--all"]):
        run(command, cwd=service)
    run(["git", "commit", "--quiet", "--no-verify", "-m", "Generate"], cwd=service)


@pytest.mark.xdist_group("background-update")
def test_an_update_from_a_release_before_workers_adds_one_and_keeps_the_teams_lines(
    releases: Path, tmp_path: Path, base_answers: dict[str, str]
) -> None:
    service = tmp_path / "orders"
    generate_without_tasks(releases, service, {**base_answers, "database": "postgres"}, "v1.0.0")
    assert "workloads" not in yaml.safe_load((service / ".copier-answers.yml").read_text())
    work = TeamWork(service)
    work.append("src/orders/api.py", "# The payments team's routers go above.\n")
    work.append("src/orders/settings.py", "\n\n# The payments team's settings go above.\n")
    work.append("README.md", "\n## Team notes\n\nOn call: the payments team.\n")
    work.create("src/orders/pricing.py", '"""Prices, the team\'s own module."""\n\nFEE = 5\n')
    work.commit()

    update(service, "--vcs-ref", "v1.1.0", data={"workloads": "[api, worker]"})

    recorded = yaml.safe_load((service / ".copier-answers.yml").read_text())
    assert (recorded["_commit"], recorded["workloads"]) == ("v1.1.0", ["api", "worker"])
    assert work.missing() == []
    lines = status(service)
    assert not [line for line in lines if line.startswith("UU") or line.endswith(".rej")], lines
    for path in (
        "src/orders/handler.py",
        "src/orders/db/processed_messages.py",
        "migrations/versions/3d9f2b7c41a0_create_processed_messages.py",
        "infra/ecs/worker-task-definition.json",
        "infra/terraform/queue.tf",
    ):
        assert (service / path).is_file(), path
    # The worker's dependencies are declared: `uv lock` (which the update says to run) adds them.
    pyproject = (service / "pyproject.toml").read_text()
    assert "smplkit-core[telemetry,worker]" in pyproject
    assert "moto[server]" in pyproject


@pytest.mark.xdist_group("background-update")
def test_make_reconfigure_adds_a_worker_to_an_existing_service(
    releases: Path, tmp_path: Path, base_answers: dict[str, str]
) -> None:
    service = tmp_path / "orders"
    generate_without_tasks(releases, service, base_answers, "v1.1.0")
    work = TeamWork(service)
    work.append("src/orders/catalog.py", "# The payments team's features go above.\n")
    work.append("Makefile", "# The payments team's note.\n")
    work.commit()
    copier = f"COPIER={sys.executable} -m copier"
    result = GeneratedService(service).run(
        "make", "reconfigure", "SET=workloads=[api,worker]", copier
    )
    assert "?? src/orders/handler.py" in result.stdout
    recorded = yaml.safe_load((service / ".copier-answers.yml").read_text())
    assert (recorded["workloads"], recorded["_commit"]) == (["api", "worker"], "v1.1.0")
    assert work.missing() == []
    assert "worker-run:" in (service / "Makefile").read_text()
    assert (service / "infra/terraform/queue.tf").is_file()


# The workspace form: `make worker` and `make job`.


@pytest.mark.xdist_group("background-workspace")
def test_a_workspace_adds_a_worker_and_a_jobs_project_deployed_like_services(
    tmp_path: Path, template_repo: Path, base_answers: dict[str, str]
) -> None:
    workspace: Workspace = generate_workspace(template_repo, tmp_path / "acme", base_answers)
    workspace.make("worker", "NAME=ingest")
    workspace.make("job", "NAME=nightly-etl")
    assert workspace.answers("projects/ingest")["workloads"] == ["worker"]
    assert workspace.answers("projects/nightly-etl")["workloads"] == ["jobs"]
    assert (workspace.path / "projects/ingest/src/ingest/handler.py").is_file()
    assert (workspace.path / "projects/nightly-etl/src/nightly_etl/jobs.py").is_file()
    refused = workspace.make("job", check=False)
    assert refused.returncode != 0
    assert "Name the jobs project: make job NAME=nightly-etl" in refused.stdout
    workspace.commit("A worker and a jobs project")
    affected = workspace.make("--silent", "affected", "BASE=", "AFFECTED_FORMAT=json").stdout
    members = {item["member"] for item in json.loads(affected)["include"]}
    assert {"ingest", "nightly-etl"} <= members
    deploys = run(
        ["python3", "tools/affected.py", "--base", "", "--deploys"], cwd=workspace.path
    ).stdout
    assert {item["member"] for item in json.loads(deploys)["include"]} >= {"ingest", "nightly-etl"}
    assert_pytest_green(workspace.make("check", "PACKAGE=nightly-etl").stdout)
