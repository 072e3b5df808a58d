"""The workspace form: many services and internal libraries in one repository, one lock.

One workspace is generated for the module (the core from the local file:// index), as a team builds
it: `make service` twice (one with postgres), `make lib`, `make add-lib`. Tests that change it work
on a git clone of it.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tomllib
from pathlib import Path
from typing import Any, NamedTuple

import pytest

from harness.commands import REPO_ROOT, git, run, tool_env
from harness.generate import copy
from harness.postgres import free_port
from harness.serve import serving
from harness.workspace import Workspace, generate_workspace
from tests.services import assert_pytest_green, service_files
from tests.test_image_recipe import Copy, in_container, stages, uv_sync_command
from tests.test_render import GITHUB_EXPRESSION
from tests.tools import dev_tool

pytestmark = pytest.mark.xdist_group("workspace")

ROOT_ONLY = (
    ".github",
    ".pre-commit-config.yaml",
    ".python-version",
    "Dockerfile",
    "uv.lock",
    "ruff.toml",
    "config",
)
"""What the root holds once for every member: no service has its own."""
DEV_TOOLS = ("pytest", "mypy", "ruff", "pre_commit")


@pytest.fixture(scope="module")
def workspace(
    tmp_path_factory: pytest.TempPathFactory, template_repo: Path, base_answers: dict[str, str]
) -> Workspace:
    """billing (uses the money library) and ledger (postgres, no library), committed."""
    created = generate_workspace(
        template_repo, tmp_path_factory.mktemp("workspace") / "acme-services", base_answers
    )
    created.make("service", "NAME=billing")
    created.make("service", "NAME=ledger", "DATABASE=postgres")
    created.make("lib", "NAME=money")
    created.make("add-lib", "SERVICE=billing", "LIB=money")
    created.commit("Two services and a library")
    return created


def pyproject(folder: Path) -> dict[str, Any]:
    return tomllib.loads((folder / "pyproject.toml").read_text())


def test_the_root_records_the_workspace_answers_and_no_service_answer(
    workspace: Workspace,
) -> None:
    answers = workspace.answers()
    assert answers["layout"] == "workspace"
    assert answers["core_source"] == "index"
    for service_only in ("package_name", "database", "http_port", "slack_channel", "description"):
        assert service_only not in answers, service_only


def test_the_root_is_rendered_whole(workspace: Workspace) -> None:
    """No Jinja left in the root's files (GitHub's own `${{ }}` aside), and its TOML parses.
    tools/ is copied as it is (its Python formats strings with braces)."""
    leftovers = []
    for path in service_files(workspace.path):
        relative = path.relative_to(workspace.path)
        if relative.parts[0] in {"projects", "lib", "tools"}:
            continue
        text = GITHUB_EXPRESSION.sub("", path.read_text())
        leftovers += [f"{relative}: {marker}" for marker in ("{{", "{%", "{#") if marker in text]
        if path.suffix == ".toml":
            tomllib.loads(path.read_text())
    assert not leftovers


def test_a_service_question_answered_for_the_root_is_refused_and_nothing_is_written(
    tmp_path: Path, template_repo: Path, base_answers: dict[str, str]
) -> None:
    destination = tmp_path / "acme-services"
    data = {**base_answers, "layout": "workspace", "database": "postgres"}
    result = copy(template_repo, destination, data, check=False)
    assert result.returncode != 0
    assert "asks no question of a service's own (database)" in result.stderr, result.stderr
    assert "make service NAME=billing DATABASE=postgres" in result.stderr
    assert not destination.exists()


def test_a_service_takes_the_workspace_answers_and_is_a_member(workspace: Workspace) -> None:
    root = workspace.answers()
    billing = workspace.answers("projects/billing")
    assert billing["workspace_member"] is True
    for inherited in ("aws_region", "aws_account_id", "core_index_url", "python_version"):
        assert billing[inherited] == root[inherited], inherited
    assert billing["_commit"] == root["_commit"]
    assert workspace.answers("projects/ledger")["database"] == "postgres"


def test_one_lock_at_the_root_and_nothing_the_root_holds_below_it(workspace: Workspace) -> None:
    files = [path.relative_to(workspace.path) for path in service_files(workspace.path)]
    locks = [path for path in files if path.name == "uv.lock"]
    assert locks == [Path("uv.lock")]
    for service in ("billing", "ledger"):
        folder = workspace.path / "projects" / service
        assert not [name for name in ROOT_ONLY if (folder / name).exists()], service
        assert (folder / "infra" / "ecs" / "task-definition.json").is_file()
    assert (workspace.path / "projects/ledger/infra/terraform/main.tf").is_file()
    assert (workspace.path / "projects/ledger/migrations/env.py").is_file()
    locked = {
        package["name"]
        for package in tomllib.loads((workspace.path / "uv.lock").read_text())["package"]
    }
    assert {"billing", "ledger", "money"} <= locked


def test_members_get_the_core_and_its_index_from_the_root(
    workspace: Workspace, core_index_url: str
) -> None:
    root = pyproject(workspace.path)
    assert root["tool"]["uv"]["index"] == [
        {"name": "private", "url": core_index_url, "explicit": True}
    ]
    assert root["tool"]["uv"]["sources"] == {"smplkit-core": {"index": "private"}}
    billing = pyproject(workspace.path / "projects" / "billing")
    assert "index" not in billing["tool"]["uv"]
    assert billing["tool"]["uv"]["sources"] == {"money": {"workspace": True}}


def test_make_lint_and_make_test_are_green(workspace: Workspace, database_url: str) -> None:
    workspace.make("lint")
    output = workspace.make("test", env={"TEST_DATABASE_URL": database_url}).stdout
    for member in ("projects/billing", "projects/ledger", "lib/money"):
        assert f"rootdir: {workspace.path / member}" in output, member
    assert output.count(" passed") == 3, output
    assert_pytest_green(output)


def test_an_undeclared_import_fails_the_members_isolated_import_test(
    workspace: Workspace, tmp_path: Path, database_url: str
) -> None:
    """ledger does not declare money: the root's environment has it (billing does), ledger's
    does not."""
    clone = workspace.clone(tmp_path / "clone")
    module = clone.path / "projects/ledger/src/ledger/rounding.py"
    module.write_text('"""Rounding, with the money library."""\n\nimport money\n\nUNIT = money\n')
    result = clone.make(
        "test", "PACKAGE=ledger", env={"TEST_DATABASE_URL": database_url}, check=False
    )
    assert result.returncode != 0, result.stdout
    assert "test_module_imports[ledger.rounding]" in result.stdout, result.stdout
    assert "No module named 'money'" in result.stdout, result.stdout


def test_make_affected_follows_a_library_to_the_service_that_uses_it(
    workspace: Workspace, tmp_path: Path
) -> None:
    """On the generated workspace's own lock: billing uses money, ledger does not."""
    clone = workspace.clone(tmp_path / "clone")
    base = git("rev-parse", "HEAD", cwd=clone.path).strip()
    (clone.path / "lib/money/src/money/__init__.py").write_text('"""Money, in cents."""\n')
    clone.commit("money counts in cents")
    found = json.loads(
        clone.make("--silent", "affected", f"BASE={base}", "AFFECTED_FORMAT=json").stdout
    )
    entries = {entry["member"]: entry for entry in found["include"]}
    assert set(entries) == {"billing", "money"}
    assert entries["billing"]["reasons"] == "uses lib/money"
    assert entries["billing"]["deploy"] is True
    assert entries["money"]["deploy"] is False


@pytest.mark.parametrize(
    ("pin", "where"),
    [
        ('"fastapi==0.115.0",', "projects/billing/pyproject.toml: 'fastapi==0.115.0' pins"),
        (None, "lib/money/uv.lock: a lock below the root"),
    ],
    ids=["a pinned dependency", "a lock below the root"],
)
def test_the_pin_check_refuses_a_members_own_version(
    workspace: Workspace, tmp_path: Path, pin: str | None, where: str
) -> None:
    clone = workspace.clone(tmp_path / "clone")
    clone.make("check-pins")
    if pin:
        billing = clone.path / "projects/billing/pyproject.toml"
        billing.write_text(billing.read_text().replace('"fastapi>=0.115",', pin))
    else:
        shutil.copy(clone.path / "uv.lock", clone.path / "lib/money/uv.lock")
    result = clone.make("lint", check=False)
    assert result.returncode != 0
    assert where in result.stderr, result.stderr


def test_hadolint_finds_nothing_in_the_generic_dockerfile(workspace: Workspace) -> None:
    """No finding at any level, ignore pragmas disabled (as for a service's Dockerfile)."""
    hadolint = [dev_tool("hadolint"), "--no-color", "--format", "json", "--disable-ignore-pragma"]
    result = run(
        [*hadolint, "Dockerfile"],
        cwd=workspace.path,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert json.loads(result.stdout) == []


class Image(NamedTuple):
    venv: Path
    """The environment the runtime stage copies: /app/.venv."""
    release: Path
    """The service's files the runtime stage copies (/app/release): its migrations, if any."""


def replay_build_stage(workspace: Workspace, package: str, tmp_path: Path) -> Image:
    """The Dockerfile's build stage, run without Docker for PACKAGE: its COPYs from the context,
    its `uv sync` commands into a fresh environment, and its shell commands with /app standing
    for a temporary folder. That folder is then deleted, so an editable install would break."""
    build = stages(workspace.path / "Dockerfile")["build"]
    app = tmp_path / "app"
    app.mkdir(parents=True)
    venv = tmp_path / "image-venv"
    env = {key: value for key, value in build.env.items() if key != "UV_PYTHON"}
    env |= {"UV_PROJECT_ENVIRONMENT": str(venv), "PACKAGE": package}
    syncs = 0
    for step in build.steps:
        if isinstance(step, Copy):
            if step.source == "uv":
                continue
            target = in_container(step.destination, build.workdir, app)
            target.mkdir(parents=True, exist_ok=True)
            for item in step.sources:
                origin = workspace.path / item
                if origin.is_dir():
                    shutil.copytree(origin, target, dirs_exist_ok=True)
                else:
                    shutil.copy2(origin, target)
            continue
        assignments, argv = uv_sync_command(step)
        if argv[:2] != ["uv", "sync"]:
            run(["sh", "-c", step.replace("/app/", f"{app}/")], cwd=app, env=env)
            continue
        assert "--no-dev" in argv
        argv = [word.replace("$PACKAGE", package) for word in argv]
        run(argv, cwd=app, env={**env, **assignments})
        syncs += 1
    assert syncs == 2
    release = shutil.copytree(app / "release", tmp_path / "release")
    shutil.rmtree(app)
    return Image(venv, release)


@pytest.mark.parametrize(
    ("package", "absent"),
    [("billing", {"ledger", "alembic", "sqlalchemy"}), ("ledger", {"billing", "money"})],
)
def test_the_image_of_a_service_holds_only_its_closure(
    workspace: Workspace, tmp_path: Path, package: str, absent: set[str]
) -> None:
    venv, release = replay_build_stage(workspace, package, tmp_path)
    python = venv / "bin" / "python"
    probe = (
        "import importlib.metadata as m, importlib.util as u, json, sys\n"
        "names = sys.argv[1:]\n"
        "print(json.dumps({n: u.find_spec(n) is not None for n in names}))"
    )
    names = sorted({package, *absent, *DEV_TOOLS} | ({"money"} if package == "billing" else set()))
    result = subprocess.run(  # noqa: S603 - the image's own interpreter
        [str(python), "-c", probe, *names], capture_output=True, text=True, check=True
    )
    found = json.loads(result.stdout)
    present = {name for name, there in found.items() if there}
    assert package in present
    assert not present & (absent | set(DEV_TOOLS)), present
    if package == "billing":
        assert "money" in present
    app = subprocess.run(  # noqa: S603
        [str(python), "-c", f"import {package}.app; print({package}.app.__file__)"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert str(venv) in app.stdout
    migrations = {"alembic.ini", "migrations"} if package == "ledger" else set()
    assert {path.name for path in release.iterdir()} == migrations


@pytest.mark.xdist_group("workspace-core")
def test_the_core_kept_in_the_workspace_is_a_member_and_built_into_the_image(
    tmp_path: Path, template_repo: Path, base_answers: dict[str, str]
) -> None:
    workspace = generate_workspace(
        template_repo, tmp_path / "acme-services", {**base_answers, "core_source": "workspace"}
    )
    refused = workspace.make("service", "NAME=billing", check=False)
    assert refused.returncode != 0
    assert "lib/smplkit-core/" in refused.stderr, refused.stderr
    # As a team brings the core's source in (a git subtree of the core's repository).
    shutil.copytree(
        REPO_ROOT / "core",
        workspace.path / "lib" / "smplkit-core",
        ignore=shutil.ignore_patterns(".venv", "dist", "__pycache__", "*_cache", ".coverage"),
    )
    workspace.make("service", "NAME=billing")
    lock = tomllib.loads((workspace.path / "uv.lock").read_text())
    [core] = [package for package in lock["package"] if package["name"] == "smplkit-core"]
    assert core["source"] == {"editable": "lib/smplkit-core"}
    venv = replay_build_stage(workspace, "billing", tmp_path / "image").venv
    located = subprocess.run(  # noqa: S603 - the image's own interpreter
        [str(venv / "bin" / "python"), "-c", "import smplcore; print(smplcore.__file__)"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert located.stdout.startswith(str(venv)), located.stdout


def test_the_image_starts_the_service_it_was_built_for(
    workspace: Workspace, tmp_path: Path
) -> None:
    """The runtime stage's generic command, from the environment alone: the module named by the
    build arguments (MODULE, else PACKAGE with - made _), answering /livez."""
    image = replay_build_stage(workspace, "billing", tmp_path)
    runtime = stages(workspace.path / "Dockerfile")["runtime"]
    assert runtime.env["SERVICE_MODULE"] == "${MODULE:-$PACKAGE}"
    port = free_port()
    path = runtime.env["PATH"].replace("/app/.venv/bin", str(image.venv / "bin"))
    env = tool_env(
        {
            "PATH": path.replace("$PATH", tool_env()["PATH"]),
            "SERVICE_MODULE": "billing",
            "HTTP_PORT": str(port),
        }
    )
    base_url = f"http://127.0.0.1:{port}"
    with serving(runtime.cmd, cwd=image.release, env=env, base_url=base_url, log=tmp_path / "log"):
        pass  # serving waits for /livez to answer


def test_the_libraries_are_owned_by_the_reviewers_of_shared_code(workspace: Workspace) -> None:
    """The platform setting shared_code_reviewers, recorded at the root, owns lib/."""
    reviewers = workspace.answers()["shared_code_reviewers"]
    assert reviewers == "@your-org/platform-reviewers"
    rules = [
        line.split()
        for line in (workspace.path / ".github" / "CODEOWNERS").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert rules == [["/lib/", reviewers]]
