"""Every generated image, built and run by a real container engine (podman, harness/podman.py).

The images are built from the generated Dockerfiles as they are: the default service's, the
postgres service's, and a workspace's generic one for each of its two services (billing uses the
library money; ledger has a database). The core comes from a stand-in for CodeArtifact: the local
core index served over HTTPS (a certificate of the tests' own CA) to the user aws with a password
made for this run, which each build gets only as its secret. So a build needs the secret, and the
tests look for it in everything that was built.

Each image then runs as ECS runs it: a read-only root filesystem (only /tmp writable), the
database's images migrated first by their own `alembic upgrade head`. All tests share one xdist
group ("images"), so the engine and its stand-in base images are set up once per run.
"""

from __future__ import annotations

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
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import pytest

from harness.commands import REPO_ROOT
from harness.core_index import PrivateIndex
from harness.generate import copy
from harness.podman import EngineUnavailableError, Podman, podman_engine
from harness.postgres import free_port, fresh_database
from harness.workspace import generate_workspace

pytestmark = pytest.mark.xdist_group("images")

SECRET_ID = "uv_index_password"
"""The build secret the Dockerfiles read the index's password from."""
APP_USER = "10001"
DEV_TOOLS = frozenset({"pytest", "ruff", "mypy", "pre_commit", "jsonschema"})
RUNTIME_FILES = ("alembic.ini", "migrations", "openapi.json")
"""What a service's image holds in /app besides its environment, when the service has it."""


class Spec(NamedTuple):
    project: str
    """What is generated: "service", "postgres" (a service with a database) or "workspace"."""
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
    "orders-postgres": Spec(
        "postgres", "orders", frozenset({"orders", "smplcore", "alembic", "sqlalchemy"}),
        frozenset(), has_database=True,
    ),
    "billing": Spec(
        "workspace", "billing", frozenset({"billing", "money", "smplcore"}),
        frozenset({"ledger", "alembic", "sqlalchemy"}), has_database=False,
    ),
    "ledger": Spec(
        "workspace", "ledger", frozenset({"ledger", "smplcore", "alembic"}),
        frozenset({"billing", "money"}), has_database=True,
    ),
}  # fmt: skip


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
            return workspace.path
        if project == "postgres":
            answers["database"] = "postgres"
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


@pytest.fixture(scope="module")
def service(request: pytest.FixtureRequest, podman: Podman, image: Image) -> Iterator[Running]:
    """The image serving, as ECS runs it; a database's image is first migrated by its own
    migrate command (what the deploy runs as a one-off task), on a fresh database."""
    port = free_port()
    env = {"HTTP_PORT": str(port)}
    migration_log = ""
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
        yield Running(container, base_url, time.monotonic() - start, migration_log)


def test_the_image_runs_as_a_non_root_user_on_a_read_only_root_filesystem(
    podman: Podman, service: Running
) -> None:
    status = podman("exec", service.container, "cat", "/proc/1/status").stdout
    uid = re.search(r"^Uid:\s+(.+)$", status, re.MULTILINE)
    assert uid, status
    assert set(uid[1].split()) == {APP_USER}, f"the service runs as uid {uid[1]}"
    assert podman.inspect(service.container)["HostConfig"]["ReadonlyRootfs"] is True


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
import hashlib, importlib.util, json, os, sys
package, names = sys.argv[1], sys.argv[2:]
spec = importlib.util.find_spec(package)
folder = os.path.dirname(spec.origin)
print(json.dumps({
    "importable": sorted(name for name in names if importlib.util.find_spec(name)),
    "origin": spec.origin,
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
    assert found["origin"].startswith("/app/.venv/lib/"), found["origin"]
    assert found["compiled"]
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
