"""The Dockerfile's recipe, run without Docker: what the image would hold, and that it serves.

The build stage is replayed from the Dockerfile itself: its COPY instructions (from the build
context) and its `RUN ... uv sync ...` commands run in order in an empty folder standing in for
/app, with its ENV, into a fresh environment (UV_PROJECT_ENVIRONMENT, as the image sets it). The
runtime stage gets only that environment (plus the files the runtime stage copies), so the service
must run from the environment alone: installed, not editable, without the dev tools. It is then
started with the image's CMD and probed with the image's HEALTHCHECK.
"""

from __future__ import annotations

import json
import shlex
import shutil
import subprocess
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import pytest

from harness.commands import run, tool_env
from harness.postgres import free_port
from harness.serve import serving
from tests.services import GeneratedService, ServiceCache, variant_params
from tests.tools import dockerfile_instructions

VARIANTS = {
    "defaults": {},
    "postgres": {"database": "postgres"},
}
DEV_TOOLS = ("pytest", "ruff", "mypy", "pre_commit")
CONTAINER_ROOT = "/app"
CONTAINER_VENV = "/app/.venv"


class Copy(NamedTuple):
    source: str  # "context", or the stage copied from
    sources: list[str]
    destination: str


@dataclass
class Stage:
    name: str
    base: str
    workdir: str = "/"
    env: dict[str, str] = field(default_factory=dict)
    copies: list[Copy] = field(default_factory=list)
    steps: list[Copy | str] = field(default_factory=list)  # COPY, or a RUN's arguments
    healthcheck: list[str] = field(default_factory=list)
    cmd: list[str] = field(default_factory=list)


def parse_env(arguments: str) -> dict[str, str]:
    return dict(item.split("=", 1) for item in shlex.split(arguments))


def stages(dockerfile: Path) -> dict[str, Stage]:
    parsed: dict[str, Stage] = {}
    current: Stage | None = None
    for keyword, arguments in dockerfile_instructions(dockerfile):
        if keyword == "FROM":
            words = arguments.split()
            named = len(words) >= 3 and words[-2].upper() == "AS"
            current = Stage(name=words[-1] if named else words[0], base=words[0])
            parsed[current.name] = current
            continue
        assert current is not None, f"{keyword} before FROM"
        if keyword == "WORKDIR":
            current.workdir = arguments
        elif keyword == "ENV":
            current.env.update(parse_env(arguments))
        elif keyword == "COPY":
            words = shlex.split(arguments)
            options = [word for word in words if word.startswith("--")]
            paths = [word for word in words if not word.startswith("--")]
            source = next(
                (o.split("=", 1)[1] for o in options if o.startswith("--from=")), "context"
            )
            current.copies.append(Copy(source, paths[:-1], paths[-1]))
            current.steps.append(current.copies[-1])
        elif keyword == "RUN":
            current.steps.append(arguments)
        elif keyword == "HEALTHCHECK":
            current.healthcheck = json.loads(arguments.split(" CMD ", 1)[1])
        elif keyword == "CMD":
            current.cmd = json.loads(arguments)
    return parsed


def uv_sync_command(arguments: str) -> tuple[dict[str, str], list[str]]:
    """A `RUN [--mount=...] [VAR=value ...] uv sync ...` line's variables and command."""
    words = shlex.split(arguments)
    while words and words[0].startswith("--mount="):
        words.pop(0)
    assignments = {}
    while words and "=" in words[0] and not words[0].startswith("-"):
        name, value = words.pop(0).split("=", 1)
        assignments[name] = value
    return assignments, words


@dataclass
class Image:
    """The image's recipe replayed on this machine."""

    service: GeneratedService
    stages: dict[str, Stage]
    venv: Path
    runtime_root: Path

    @property
    def python(self) -> Path:
        return self.venv / "bin" / "python"

    def runtime_env(self, **extra: str) -> dict[str, str]:
        runtime = self.stages["runtime"]
        env = {key: value for key, value in runtime.env.items() if key != "PATH"}
        path = runtime.env["PATH"].replace(f"{CONTAINER_VENV}/bin", str(self.venv / "bin"))
        path = path.replace("$PATH", tool_env()["PATH"])
        return tool_env({**env, "PATH": path, **extra})

    def runtime_argv(self, argv: list[str]) -> list[str]:
        assert argv[0] == "python", argv
        return [str(self.python), *argv[1:]]


def in_container(path: str, workdir: str, root: Path) -> Path:
    """Where a container path of the stage lives in the stand-in folder (`root` is /app)."""
    absolute = path if path.startswith("/") else f"{workdir.rstrip('/')}/{path}"
    assert absolute.startswith(CONTAINER_ROOT), f"{absolute} is outside {CONTAINER_ROOT}"
    return root / absolute.removeprefix(CONTAINER_ROOT).lstrip("/")


def runtime_files(service: GeneratedService, runtime: Stage, runtime_root: Path) -> Path:
    """The runtime stage's /app: its COPYs from the context; the build gives only the venv."""
    runtime_root.mkdir()
    for source, sources, destination in runtime.copies:
        if source == "build":
            assert sources == [CONTAINER_VENV]
            assert destination == CONTAINER_VENV
            continue
        assert source == "context"
        target = in_container(destination, runtime.workdir, runtime_root)
        for item in sources:
            origin = service.path / item
            assert origin.exists(), f"COPY {item} (runtime stage): not in the build context"
            if origin.is_dir():
                shutil.copytree(origin, target, dirs_exist_ok=True)
            else:
                target.mkdir(parents=True, exist_ok=True)
                shutil.copy2(origin, target / origin.name)
    return runtime_root


def build(service: GeneratedService, tmp_path: Path) -> Image:
    parsed = stages(service.path / "Dockerfile")
    assert {"build", "runtime"} <= parsed.keys()
    build_stage = parsed["build"]
    assert build_stage.env["UV_PROJECT_ENVIRONMENT"] == CONTAINER_VENV
    build_root = tmp_path / "build-app"
    build_root.mkdir()
    venv = tmp_path / "image-venv"
    env = {
        key: value
        for key, value in build_stage.env.items()
        if key not in {"UV_PYTHON", "UV_PROJECT_ENVIRONMENT"}
    }
    env |= {
        **service.env,  # the service's Python version, as the image's python:X.Y base gives it
        "UV_PROJECT_ENVIRONMENT": str(venv),
        "UV_INDEX_PRIVATE_PASSWORD": "build-secret-not-needed-by-a-file-index",
    }
    syncs = 0
    for step in build_stage.steps:
        if isinstance(step, Copy):
            source, sources, destination = step
            # The uv binaries: this machine's uv is the same release (checked below).
            if source == "uv":
                assert sources == ["/uv", "/uvx"]
                assert destination == "/bin/"
                continue
            assert source == "context", f"build stage copies from {source}"
            target = in_container(destination, build_stage.workdir, build_root)
            if destination.endswith("/"):
                target.mkdir(parents=True, exist_ok=True)
            for item in sources:
                origin = service.path / item
                assert origin.exists(), f"COPY {item}: not in the build context"
                if origin.is_dir():
                    shutil.copytree(
                        origin,
                        target,
                        dirs_exist_ok=True,
                        ignore=shutil.ignore_patterns("__pycache__"),
                    )
                else:
                    shutil.copy2(origin, target / origin.name if target.is_dir() else target)
            continue
        assert "--mount=type=secret,id=uv_index_password,env=UV_INDEX_PRIVATE_PASSWORD" in step
        assignments, argv = uv_sync_command(step)
        assert argv[:2] == ["uv", "sync"], (
            f"the build stage runs something other than uv sync: {step}"
        )
        assert "--locked" in argv
        assert "--no-dev" in argv
        run(
            argv, cwd=in_container(".", build_stage.workdir, build_root), env={**env, **assignments}
        )
        syncs += 1
    assert syncs == 2
    runtime_root = runtime_files(service, parsed["runtime"], tmp_path / "runtime-app")
    shutil.rmtree(build_root)  # an editable install would now break
    return Image(service=service, stages=parsed, venv=venv, runtime_root=runtime_root)


@pytest.fixture(
    scope="module",
    params=variant_params(VARIANTS),
)
def service(request: pytest.FixtureRequest, services: ServiceCache) -> GeneratedService:
    return services.get(**VARIANTS[request.param])


@pytest.fixture(scope="module")
def image(service: GeneratedService, tmp_path_factory: pytest.TempPathFactory) -> Image:
    """Built once per variant; the tests only read it."""
    return build(service, tmp_path_factory.mktemp("image"))


def python_in_image(image: Image, code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # noqa: S603 - the image's own interpreter
        [str(image.python), "-c", code],
        cwd=image.runtime_root,
        env=image.runtime_env(),
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )


def test_the_image_holds_the_runtime_dependencies_and_no_dev_tool(image: Image) -> None:
    probe = python_in_image(
        image,
        (
            "import importlib.util, json\n"
            f"names = {DEV_TOOLS!r}\n"
            "found = {name: importlib.util.find_spec(name) is not None for name in names}\n"
            "print(json.dumps(found))"
        ),
    )
    assert probe.returncode == 0, probe.stderr
    assert json.loads(probe.stdout) == dict.fromkeys(DEV_TOOLS, False)
    installed = {
        path.name.split("-")[0].lower()
        for path in (image.venv / "lib").glob("python*/site-packages/*.dist-info")
    }
    assert {"fastapi", "uvicorn", "smplkit_core"} <= installed
    assert not {"pytest", "ruff", "mypy", "pre_commit", "httpx"} & installed


def test_the_service_is_installed_not_editable(image: Image) -> None:
    """The package runs from the environment: the build folder (with src/) is gone by now."""
    package = image.service.package_name
    probe = python_in_image(image, f"import {package}; print({package}.__file__)")
    assert probe.returncode == 0, probe.stderr
    assert Path(probe.stdout.strip()).is_relative_to(image.venv), probe.stdout
    site_packages = next((image.venv / "lib").glob("python*/site-packages"))
    assert not list(site_packages.glob("__editable__*"))
    assert not any("build-app" in path.read_text() for path in site_packages.glob("*.pth"))


def test_the_bytecode_is_compiled_at_build_time(image: Image) -> None:
    """UV_COMPILE_BYTECODE: the read-only runtime never needs to write .pyc files."""
    package_dir = next(
        (image.venv / "lib").glob(f"python*/site-packages/{image.service.package_name}")
    )
    assert list(package_dir.glob("__pycache__/*.pyc"))


@pytest.fixture
def served(image: Image, tmp_path: Path) -> Iterator[tuple[Image, int]]:
    """The image's CMD, serving."""
    port = free_port()
    with serving(
        image.runtime_argv(image.stages["runtime"].cmd),
        cwd=image.runtime_root,
        env=image.runtime_env(HTTP_PORT=str(port)),
        base_url=f"http://127.0.0.1:{port}",
        log=tmp_path / "service.log",
    ):
        yield image, port


def test_the_image_command_serves_livez(served: tuple[Image, int]) -> None:
    _, port = served
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/livez", timeout=5) as response:
        assert response.status == 200
        assert json.load(response)["meta"]["status"] == "ok"


def test_the_image_healthcheck_passes_against_the_running_service(
    served: tuple[Image, int],
) -> None:
    image, port = served
    healthcheck = image.stages["runtime"].healthcheck
    result = subprocess.run(  # noqa: S603 - the image's HEALTHCHECK
        image.runtime_argv(healthcheck),
        cwd=image.runtime_root,
        env=image.runtime_env(HTTP_PORT=str(port)),
        capture_output=True,
        text=True,
        check=False,
        timeout=30,
    )
    assert result.returncode == 0, result.stderr


def test_the_image_healthcheck_fails_when_nothing_serves(image: Image) -> None:
    result = subprocess.run(  # noqa: S603 - the image's HEALTHCHECK
        image.runtime_argv(image.stages["runtime"].healthcheck),
        cwd=image.runtime_root,
        env=image.runtime_env(HTTP_PORT=str(free_port())),
        capture_output=True,
        text=True,
        check=False,
        timeout=30,
    )
    assert result.returncode != 0


def test_the_runtime_stage_copies_the_openapi_document_and_the_migrations(image: Image) -> None:
    """openapi.json, and alembic.ini and migrations/ with the database option, are in the build
    context and land in /app, alone."""
    landed = sorted(path.name for path in image.runtime_root.iterdir())
    committed = (image.service.path / "openapi.json").read_text()
    assert (image.runtime_root / "openapi.json").read_text() == committed
    if image.service.answers.get("database") == "postgres":
        assert landed == ["alembic.ini", "migrations", "openapi.json"]
        assert (image.runtime_root / "alembic.ini").is_file()
    else:
        assert landed == ["openapi.json"]


def test_the_image_uses_the_uv_release_these_tests_use(service: GeneratedService) -> None:
    """The image copies uv from ghcr.io/astral-sh/uv:<version>: the uv these tests lock with."""
    uv_stage = stages(service.path / "Dockerfile")["uv"]
    image, _, version = uv_stage.base.partition(":")
    assert image == "ghcr.io/astral-sh/uv"
    assert run(["uv", "--version"]).stdout.split()[1] == version
