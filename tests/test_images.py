"""Every generated image, built and run by a real container engine (podman, harness/podman.py).

The images are built from the generated Dockerfiles as they are: the default service's, that of
a service with every workload (API, worker, jobs) and a database, and a workspace's generic one for
each of its three services (billing uses the library money; ledger has a database; legacy, which
uses money too, is isolated: `make isolate`, its own lock). The core comes from a stand-in for
CodeArtifact: the local core index served over HTTPS (a certificate of the tests' own CA) to the
user aws with a password made for this run, which each build gets only as its secret. So a build
needs the secret, and the tests look for it in everything that was built.

Each image then runs as ECS runs it: a read-only root filesystem (only /tmp writable), the
database's images migrated first by their own `alembic upgrade head`. The service with every
workload also runs its worker (on moto's SQS server, started here) and its job from the same
image. All tests share one xdist group ("images"), so the engine and its stand-in base images are
set up once per run.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import mmap
import re
import secrets
import shutil
import time
import tomllib
import urllib.request
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import ExitStack, asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import pytest
from aiobotocore.session import get_session
from packaging.utils import canonicalize_name

from harness.commands import REPO_ROOT, run
from harness.core_index import PrivateIndex
from harness.generate import copy
from harness.podman import EngineUnavailableError, Podman, podman_engine
from harness.postgres import free_port, fresh_database, psql, url_for_database
from harness.workspace import generate_workspace
from smplcore.localsqs import LOCAL_CREDENTIALS, LocalQueue, create_queue, sqs_server

if TYPE_CHECKING:
    from types_aiobotocore_sqs import SQSClient

pytestmark = pytest.mark.xdist_group("images")

SECRET_ID = "uv_index_password"
"""The build secret the Dockerfiles read the index's password from."""
APP_USER = "10001"
DEV_TOOLS = frozenset({"pytest", "ruff", "mypy", "pre_commit", "jsonschema", "moto"})
RUNTIME_FILES = ("alembic.ini", "migrations", "openapi.json")
"""What a service's image holds in /app besides its environment, when the service has it."""


class Spec(NamedTuple):
    project: str
    """What is generated: "service", "everything" (a service with every workload and a database)
    or "workspace"."""
    package: str
    """The service's import name (and, in the workspace, its PACKAGE)."""
    closure: frozenset[str]
    """Importable in the image."""
    outside: frozenset[str]
    """Not importable: other members, dependencies of other services."""
    has_database: bool


IMAGES = {
    "orders": Spec(
        "service", "orders", frozenset({"orders", "smplcore", "uvicorn"}),
        frozenset({"alembic", "sqlalchemy"}), has_database=False,
    ),
    "orders-everything": Spec(
        "everything", "orders",
        frozenset({"orders", "smplcore", "alembic", "sqlalchemy", "aiobotocore"}),
        frozenset(), has_database=True,
    ),
    "billing": Spec(
        "workspace", "billing", frozenset({"billing", "money", "smplcore"}),
        frozenset({"ledger", "legacy", "alembic", "sqlalchemy", "humanize"}), has_database=False,
    ),
    "ledger": Spec(
        "workspace", "ledger", frozenset({"ledger", "smplcore", "alembic"}),
        frozenset({"billing", "legacy", "money"}), has_database=True,
    ),
    "legacy": Spec(
        "workspace", "legacy", frozenset({"legacy", "money", "smplcore", "humanize"}),
        frozenset({"billing", "ledger", "alembic"}), has_database=False,
    ),
}  # fmt: skip
EVERYTHING = "orders-everything"
"""The image whose worker and job run too."""
ISOLATED_PIN = "humanize<4"
"""What the isolated member locks on its own: the workspace's lock holds no humanize."""


@dataclass
class Projects:
    """The generated build contexts, each made the first time a test needs it."""

    root: Path
    template: Path
    index: PrivateIndex
    made: dict[str, Path] = field(default_factory=dict)

    def get(self, project: str) -> Path:
        if project not in self.made:
            self.made[project] = self.generate(project)
        return self.made[project]

    def generate(self, project: str) -> Path:
        answers = {"core_index_url": self.index.url}
        env = self.index.env
        if project == "workspace":
            workspace = generate_workspace(
                self.template, self.root / "acme-services", answers, env=env
            )
            workspace.make("service", "NAME=billing", env=env)
            workspace.make("service", "NAME=ledger", "DATABASE=postgres", env=env)
            workspace.make("lib", "NAME=money", env=env)
            workspace.make("add-lib", "SERVICE=billing", "LIB=money", env=env)
            workspace.make("service", "NAME=legacy", env=env)
            workspace.make("add-lib", "SERVICE=legacy", "LIB=money", env=env)
            workspace.make("isolate", "SERVICE=legacy", env=env)
            legacy = workspace.path / "projects" / "legacy"
            run(["uv", "add", "--quiet", "--no-sync", ISOLATED_PIN], cwd=legacy, env=env)
            return workspace.path
        if project == "everything":
            answers |= {"workloads": "[api, worker, jobs]", "database": "postgres"}
        copy(self.template, self.root / project, answers, env=env)
        return self.root / project


@pytest.fixture(scope="module")
def projects(
    tmp_path_factory: pytest.TempPathFactory, template_repo: Path, private_index: PrivateIndex
) -> Projects:
    return Projects(tmp_path_factory.mktemp("projects"), template_repo, private_index)


@dataclass
class Image:
    name: str
    spec: Spec
    context: Path
    build_args: dict[str, str]
    build_seconds: float

    @property
    def service_folder(self) -> Path:
        """The service's own folder in the build context."""
        in_workspace = self.spec.project == "workspace"
        return self.context / "projects" / self.spec.package if in_workspace else self.context

    @property
    def lock(self) -> Path:
        """The lock the image is installed from: the service's own when it is isolated."""
        own = self.service_folder / "uv.lock"
        return own if own.exists() else self.context / "uv.lock"

    @property
    def source(self) -> Path:
        """The service's app module in the build context (it lands in the image as it is)."""
        return self.service_folder / "src" / self.spec.package / "app.py"


def build(podman: Podman, image: Image, index: PrivateIndex, target: str | None = None) -> str:
    tag = f"{image.name}-{target}" if target else image.name
    podman.build(
        image.context,
        tag,
        build_args=image.build_args,
        secrets={SECRET_ID: index.password_file},
        target=target,
    )
    return tag


@pytest.fixture(scope="module", params=list(IMAGES))
def image(
    request: pytest.FixtureRequest, podman: Podman, projects: Projects, private_index: PrivateIndex
) -> Image:
    spec = IMAGES[request.param]
    context = projects.get(spec.project)
    build_args = {"PACKAGE": spec.package} if spec.project == "workspace" else {}
    built = Image(request.param, spec, context, build_args, build_seconds=0)
    start = time.monotonic()
    build(podman, built, private_index)
    built.build_seconds = time.monotonic() - start
    return built


class Running(NamedTuple):
    container: str
    base_url: str
    ready_seconds: float
    """From `podman run` to /readyz's first 200."""
    migration_log: str
    database_url: str | None
    """The migrated database it serves from, when it has one."""


@pytest.fixture(scope="module")
def service(request: pytest.FixtureRequest, podman: Podman, image: Image) -> Iterator[Running]:
    """The image serving, as ECS runs it; a database's image is first migrated by its own
    migrate command (what the deploy runs as a one-off task), on a fresh database."""
    port = free_port()
    env = {"HTTP_PORT": str(port)}
    migration_log = ""
    url = None
    with ExitStack() as stack:
        if image.spec.has_database:
            url = stack.enter_context(fresh_database(request.getfixturevalue("database_url")))
            env["DATABASE_URL"] = url
            migrated = podman.run(image.name, "alembic", "upgrade", "head", env=env)
            migration_log = migrated.stdout + migrated.stderr
        start = time.monotonic()
        container = stack.enter_context(podman.started(image.name, env=env))
        base_url = f"http://127.0.0.1:{port}"
        podman.wait_until_answering(container, f"{base_url}/readyz")
        yield Running(container, base_url, time.monotonic() - start, migration_log, url)


def assert_non_root_on_a_read_only_root_filesystem(podman: Podman, container: str) -> None:
    status = podman("exec", container, "cat", "/proc/1/status").stdout
    uid = re.search(r"^Uid:\s+(.+)$", status, re.MULTILINE)
    assert uid, status
    assert set(uid[1].split()) == {APP_USER}, f"the container runs as uid {uid[1]}"
    assert podman.inspect(container)["HostConfig"]["ReadonlyRootfs"] is True


def test_the_image_runs_as_a_non_root_user_on_a_read_only_root_filesystem(
    podman: Podman, service: Running
) -> None:
    assert_non_root_on_a_read_only_root_filesystem(podman, service.container)


def test_livez_and_readyz_answer_200(
    image: Image, service: Running, podman: Podman, record_property: Callable[[str, object], None]
) -> None:
    for path in ("/livez", "/readyz"):
        with urllib.request.urlopen(f"{service.base_url}{path}", timeout=5) as response:  # noqa: S310
            assert response.status == 200, path
    if image.spec.has_database:
        assert "Running upgrade" in service.migration_log, service.migration_log
    # The run's figures (pytest --junitxml shows them).
    record_property("build_s", round(image.build_seconds, 1))
    record_property("image_mib", round(podman.inspect(image.name)["Size"] / 2**20))
    record_property("start_to_readyz_s", round(service.ready_seconds, 2))


def test_the_healthcheck_reports_healthy(podman: Podman, service: Running) -> None:
    result = podman("healthcheck", "run", service.container, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert podman.inspect(service.container)["State"]["Health"]["Status"] == "healthy"


PROBE = """
import hashlib, importlib.metadata, importlib.util, json, os, sys
package, names = sys.argv[1], sys.argv[2:]
spec = importlib.util.find_spec(package)
folder = os.path.dirname(spec.origin)
specs = {name: importlib.util.find_spec(name) for name in names}
print(json.dumps({
    "importable": sorted(name for name, found in specs.items() if found),
    "origins": {name: found.origin for name, found in specs.items() if found},
    "distributions": {
        found.metadata["Name"]: found.version for found in importlib.metadata.distributions()
    },
    "compiled": any(name.endswith(".pyc") for name in os.listdir(folder + "/__pycache__"))
    if os.path.isdir(folder + "/__pycache__") else False,
    "app": {
        name: hashlib.sha256(open("/app/" + name, "rb").read()).hexdigest()
        if os.path.isfile("/app/" + name) else "folder"
        for name in os.listdir("/app")
    },
    "tests": [
        os.path.join(root, name)
        for root, folders, files in os.walk(folder)
        for name in folders + files
        if name == "tests" or name.startswith("test_") or name == "conftest.py"
    ],
    "git": [
        os.path.join(root, name)
        for top in ("/app", "/etc", "/opt", "/srv", "/usr", "/var", "/root", "/home")
        for root, folders, _ in os.walk(top)
        for name in folders
        if name == ".git"
    ],
}))
"""


def test_the_image_holds_its_closure_compiled_and_no_tests_dev_tools_or_git(
    podman: Podman, image: Image
) -> None:
    spec = image.spec
    names = sorted(spec.closure | spec.outside | DEV_TOOLS)
    found = json.loads(podman.run(image.name, "python", "-c", PROBE, spec.package, *names).stdout)
    assert found["importable"] == sorted(spec.closure)
    # Installed, not editable: from the environment, with its bytecode compiled at build time.
    outside_the_environment = {
        name: origin
        for name, origin in found["origins"].items()
        if not origin.startswith("/app/.venv/lib/")
    }
    assert outside_the_environment == {}
    assert found["compiled"]
    # Each package at the version of the lock it was built from (an isolated service: its own).
    locked = {
        package["name"]: package["version"]
        for package in tomllib.loads(image.lock.read_text())["package"]
    }
    installed = {
        canonicalize_name(name): version for name, version in found["distributions"].items()
    }
    assert {name: locked.get(name) for name in installed} == installed
    # /app: the environment and the service's runtime files, as they are in the build context.
    shipped = [image.service_folder / name for name in RUNTIME_FILES]
    assert found["app"] == {".venv": "folder"} | {
        path.name: hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else "folder"
        for path in shipped
        if path.exists()
    }
    assert found["tests"] == []
    assert found["git"] == []


def occurrences(archive: Path, values: list[bytes]) -> list[bytes]:
    """The values found anywhere in the archive's bytes (podman save's layers are plain tars)."""
    with archive.open("rb") as file, mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_READ) as data:
        return [value for value in values if data.find(value) != -1]


def secret_forms(password: str) -> list[bytes]:
    """The password as it is, and as uv would send it (HTTP basic authentication)."""
    return [password.encode(), base64.b64encode(f"aws:{password}".encode())]


def test_the_index_secret_is_in_no_layer_and_not_in_the_image_configuration(
    podman: Podman, image: Image, private_index: PrivateIndex, tmp_path: Path
) -> None:
    """Neither in the image nor in its build stage (every layer the secret's RUNs made)."""
    build_stage = build(podman, image, private_index, target="build")  # from the build's cache
    archive = tmp_path / "images.tar"
    podman("save", "--multi-image-archive", "--output", archive, image.name, build_stage)
    try:
        assert occurrences(archive, [image.source.read_bytes()])  # the search reads the layers
        leaked = occurrences(archive, secret_forms(private_index.password))
        assert not leaked, f"the index password is in a layer ({len(leaked)} of its forms)"
    finally:
        archive.unlink()
    for name in (image.name, build_stage):
        assert private_index.password not in json.dumps(podman.inspect(name))


# The worker and the jobs: the same image with another command (their task definitions').


@pytest.fixture(scope="module")
def sqs_endpoint() -> Iterator[str]:
    """moto's SQS server (the core's smplcore.localsqs), on loopback: the worker's queue."""
    with sqs_server() as endpoint_url:
        yield endpoint_url


@asynccontextmanager
async def sqs_client(endpoint_url: str) -> AsyncIterator[SQSClient]:
    async with get_session().create_client(
        "sqs",
        region_name="us-east-1",
        endpoint_url=endpoint_url,
        aws_access_key_id=LOCAL_CREDENTIALS["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=LOCAL_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
    ) as sqs:
        yield sqs


async def send(endpoint_url: str, queue_url: str, body: str) -> str:
    async with sqs_client(endpoint_url) as sqs:
        return (await sqs.send_message(QueueUrl=queue_url, MessageBody=body))["MessageId"]


async def messages_left(endpoint_url: str, queue: LocalQueue) -> int:
    """The messages on the queue and its dead-letter queue, visible or being handled."""
    left = 0
    async with sqs_client(endpoint_url) as sqs:
        for url in (queue.url, queue.dead_letter_url):
            found = await sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])
            attributes = found["Attributes"]
            left += int(attributes["ApproximateNumberOfMessages"])
            left += int(attributes["ApproximateNumberOfMessagesNotVisible"])
    return left


def json_lines(output: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in output.splitlines() if line.startswith("{")]


def wait_for_line(
    podman: Podman, container: str, wanted: Callable[[dict[str, Any]], bool], seconds: float = 60
) -> dict[str, Any]:
    """The container's first log line that is `wanted`; fails, with its logs, when it stops or
    `seconds` pass first."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        logs = podman.logs(container)
        found = [line for line in json_lines(logs) if wanted(line)]
        if found:
            return found[0]
        if not podman.inspect(container)["State"]["Running"]:
            break
        time.sleep(0.2)
    raise AssertionError(f"no such line from {container}:\n{podman.logs(container)}")


@pytest.mark.parametrize("image", [EVERYTHING], indirect=True)
def test_the_worker_runs_from_the_image_handles_a_message_and_stops_cleanly_on_sigterm(
    podman: Podman,
    image: Image,
    service: Running,
    sqs_endpoint: str,
    record_property: Callable[[str, object], None],
) -> None:
    """`python -m orders worker`, its ECS service's command, as ECS runs it: the message is
    handled once, recorded in the database and deleted; `podman stop` sends SIGTERM."""
    assert service.database_url
    queue = asyncio.run(create_queue(sqs_endpoint, image.spec.package))
    body = json.dumps({"account_id": "acct-1", "name": "from the image"})
    message_id = asyncio.run(send(sqs_endpoint, queue.url, body))
    env = {
        **LOCAL_CREDENTIALS,
        "QUEUE_URL": queue.url,
        "SQS_ENDPOINT_URL": sqs_endpoint,
        "DATABASE_URL": service.database_url,
    }
    command = ("python", "-m", image.spec.package, "worker")
    with podman.started(image.name, *command, env=env) as container:
        line = wait_for_line(podman, container, lambda line: line.get("message_id") == message_id)
        assert_non_root_on_a_read_only_root_filesystem(podman, container)
        start = time.monotonic()
        podman("stop", "--time=30", container)
        record_property("worker_stop_s", round(time.monotonic() - start, 2))
        state = podman.inspect(container)["State"]
        assert state["ExitCode"] == 0, podman.logs(container)
    assert (line["event"], line["outcome"], line["receive_count"]) == ("message", "processed", 1)
    assert asyncio.run(messages_left(sqs_endpoint, queue)) == 0
    recorded = psql(service.database_url, "SELECT message_id FROM processed_messages")
    assert recorded == message_id


@pytest.mark.parametrize("image", [EVERYTHING], indirect=True)
def test_a_job_runs_from_the_image_and_exits_with_its_status(
    podman: Podman, image: Image, service: Running, database_url: str
) -> None:
    """`python -m orders job NAME`, its schedule's command: 0 when the job returns, 1 when it
    raises (here, its database is gone)."""
    assert service.database_url
    command = ("python", "-m", image.spec.package, "job", "nightly-report")

    def run_job(url: str) -> tuple[int, dict[str, Any]]:
        done = podman.run(image.name, *command, env={"DATABASE_URL": url}, check=False)
        lines = [line for line in json_lines(done.stdout) if line["logger"] == "smplcore.jobs"]
        assert len(lines) == 1, done.stdout + done.stderr
        return done.returncode, lines[0]

    status, line = run_job(service.database_url)
    assert (status, line["job"], line["outcome"]) == (0, "nightly-report", "succeeded")
    status, line = run_job(url_for_database(database_url, f"gone_{secrets.token_hex(4)}"))
    assert (status, line["outcome"], line["level"]) == (1, "failed", "error")


def test_ci_deploys_the_isolated_member_whose_packages_only_its_own_lock_holds(
    projects: Projects,
) -> None:
    """The workspace CI builds (`--build-arg PACKAGE=<member>`) and deploys what
    `tools/affected.py --deploys` lists: the isolated member too. Its packages are in its own
    lock only (the image tests find them in its image, at their versions there)."""
    workspace = projects.get("workspace")
    deploys = run(["python3", "tools/affected.py", "--base", "", "--deploys"], cwd=workspace).stdout
    listed = {item["member"]: item["path"] for item in json.loads(deploys)["include"]}
    assert listed == {
        "billing": "projects/billing",
        "ledger": "projects/ledger",
        "legacy": "projects/legacy",
    }
    root = {
        package["name"] for package in tomllib.loads((workspace / "uv.lock").read_text())["package"]
    }
    assert not {"legacy", "humanize"} & root
    own = tomllib.loads((workspace / "projects" / "legacy" / "uv.lock").read_text())
    assert {"legacy", "money", "humanize"} <= {package["name"] for package in own["package"]}


def test_the_core_kept_in_the_workspace_is_a_member_and_built_into_the_image(
    podman: Podman, tmp_path: Path, template_repo: Path, private_index: PrivateIndex
) -> None:
    answers = {"core_index_url": private_index.url, "core_source": "workspace"}
    env = private_index.env
    workspace = generate_workspace(template_repo, tmp_path / "acme-services", answers, env=env)
    refused = workspace.make("service", "NAME=billing", env=env, check=False)
    assert refused.returncode != 0
    assert "lib/smplkit-core/" in refused.stderr, refused.stderr
    # As a team brings the core's source in (a git subtree of the core's repository).
    shutil.copytree(
        REPO_ROOT / "core",
        workspace.path / "lib" / "smplkit-core",
        ignore=shutil.ignore_patterns(".venv", "dist", "__pycache__", "*_cache", ".coverage"),
    )
    workspace.make("service", "NAME=billing", env=env)
    lock = tomllib.loads((workspace.path / "uv.lock").read_text())
    [core] = [package for package in lock["package"] if package["name"] == "smplkit-core"]
    assert core["source"] == {"editable": "lib/smplkit-core"}
    podman.build(
        workspace.path,
        "billing-with-its-core",
        build_args={"PACKAGE": "billing"},
        secrets={SECRET_ID: private_index.password_file},
    )
    located = podman.run(
        "billing-with-its-core", "python", "-c", "import smplcore; print(smplcore.__file__)"
    )
    assert located.stdout.startswith("/app/.venv/lib/"), located.stdout


# What makes these tests fail, each shown once on a small image.


def test_the_secret_search_finds_a_secret_in_a_layer_and_in_the_configuration(
    podman: Podman, tmp_path: Path
) -> None:
    password = secrets.token_urlsafe(24)
    (tmp_path / "token").write_text(password)
    (tmp_path / "Dockerfile").write_text(
        f"FROM scratch\nCOPY token /token\nENV UV_INDEX_PRIVATE_PASSWORD={password}\n"
    )
    podman.build(tmp_path, "leaky")
    archive = tmp_path / "leaky.tar"
    podman("save", "--output", archive, "leaky")
    assert occurrences(archive, secret_forms(password)) == [password.encode()]
    assert password in json.dumps(podman.inspect("leaky")["Config"]["Env"])


def test_the_build_refuses_to_start_without_the_index_secret(
    podman: Podman, projects: Projects
) -> None:
    context = projects.get("service")
    result = podman.build(context, "orders-without-secret", cache=False, check=False)
    assert result.returncode != 0
    assert f"secret required but no secret with id {SECRET_ID} found" in result.stderr


def test_the_healthcheck_reports_unhealthy_when_nothing_serves(
    podman: Podman, projects: Projects, private_index: PrivateIndex
) -> None:
    spec = IMAGES["orders"]
    image = Image("orders", spec, projects.get(spec.project), {}, build_seconds=0)
    build(podman, image, private_index)  # from the build's cache when the image tests ran first
    with podman.started("orders", "python", "-c", "import time; time.sleep(60)") as container:
        result = podman("healthcheck", "run", container, check=False)
    assert result.returncode != 0
    assert "unhealthy" in result.stdout


def test_a_machine_without_the_engine_fails_saying_what_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with (
        pytest.raises(EngineUnavailableError, match=r"apt-get install podman runc mmdebstrap"),
        podman_engine(tmp_path / "state"),
    ):
        pass
