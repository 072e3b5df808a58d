"""A uv workspace of 30 services and 10 libraries, with a real uv.lock in a real git repository,
built offline in seconds: the scale case of affected-only CI (workspace/tools/affected.py).

Third-party packages (and the core) are tiny wheels written here into a local PEP 503 file://
index, several versions each: the workspace is locked against the older ones, and a change that
publishes a newer one and runs `uv lock --upgrade-package` bumps exactly what one package's users
install. The libraries form a layered graph over one bottom library that every member reaches;
`CHANGES` are the fixed changes the tests and the benchmark replay, one commit each, with the
members each must affect and the services each must deploy.
"""

from __future__ import annotations

import base64
import hashlib
import json
import shutil
import tomllib
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from fleet.simple_index import add_to_index
from harness.commands import git, run

AFFECTED_MODULE = Path(__file__).resolve().parents[1] / "workspace" / "tools" / "affected.py"

THIRD_PARTY: dict[str, dict[str, list[str]]] = {
    "typing-extensions": {"4.12.0": [], "4.13.0": []},
    "pydantic": {"2.11.0": ["typing-extensions>=4.12"], "2.12.0": ["typing-extensions>=4.12"]},
    "idna": {"3.9": [], "3.10": []},
    "httpx": {"0.27.0": ["idna"], "0.28.0": ["idna"]},
    "orjson": {"3.10.0": [], "3.11.0": []},
    "smplkit-core": {"1.0.0": ["pydantic>=2.11"], "1.1.0": ["pydantic>=2.11"]},
    "pytest": {"8.3.0": [], "8.4.0": []},
}
"""name: {version: requirements}; the workspace is first locked against each one's oldest."""

LIBRARIES: dict[str, list[str]] = {
    "base": ["pydantic"],
    "money": ["base"],
    "events": ["base"],
    "auth": ["base"],
    "ledger": ["money"],
    "notify": ["events", "httpx"],
    "access": ["auth"],
    "pricing": ["ledger", "access"],
    "audit": ["events", "access"],
    "mail": ["notify"],
}
"""Each library's dependencies (libraries or third-party), in layers over `base`."""

SERVICE_LIBRARIES = ["pricing", "audit", "ledger", "access", "notify", "money", "events", "auth"]
MAIL_USERS = ("service-01", "service-02", "service-03")
ORJSON_USER = "service-07"
DATABASE_SERVICES = ("service-02", "service-05", "service-10")


def service_names() -> list[str]:
    return [f"service-{number:02d}" for number in range(1, 31)]


def service_dependencies(name: str) -> list[str]:
    """Every service uses the core and one or two libraries; three use `mail`; one `orjson`."""
    number = int(name.rsplit("-", 1)[1])
    libraries = (
        ["mail"]
        if name in MAIL_USERS
        else [SERVICE_LIBRARIES[number % 8], SERVICE_LIBRARIES[(number * 3) % 8]]
    )
    extra = ["orjson"] if name == ORJSON_USER else []
    return ["smplkit-core", *dict.fromkeys(libraries), *extra]


def module(name: str) -> str:
    return name.replace("-", "_")


# The index.


def write_wheel(directory: Path, name: str, version: str, requires: list[str]) -> Path:
    """A minimal pure-Python wheel: one module, METADATA with its requirements, RECORD."""
    stem = f"{module(name)}-{version}"
    path = directory / f"{stem}-py3-none-any.whl"
    files = {
        f"{module(name)}/__init__.py": f'__version__ = "{version}"\n',
        f"{stem}.dist-info/METADATA": "\n".join(
            [
                "Metadata-Version: 2.1",
                f"Name: {name}",
                f"Version: {version}",
                *(f"Requires-Dist: {requirement}" for requirement in requires),
                "",
            ]
        ),
        f"{stem}.dist-info/WHEEL": (
            "Wheel-Version: 1.0\nGenerator: bench\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
        ),
    }
    record = []
    for file, text in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest()).rstrip(b"=")
        record.append(f"{file},sha256={digest.decode()},{len(text.encode())}")
    record.append(f"{stem}.dist-info/RECORD,,")
    files[f"{stem}.dist-info/RECORD"] = "\n".join(record) + "\n"
    with zipfile.ZipFile(path, "w") as wheel:
        for file, text in files.items():
            wheel.writestr(file, text)
    return path


def publish(index: Path, name: str, version: str) -> None:
    wheels = index.parent / "wheels"
    wheels.mkdir(exist_ok=True)
    add_to_index(index, name, [write_wheel(wheels, name, version, THIRD_PARTY[name][version])])


# The workspace.

ROOT_PYPROJECT = """\
[tool.uv.workspace]
members = ["projects/*", "lib/*"]

[[tool.uv.index]]
name = "local"
url = "{index}"
default = true

[dependency-groups]
dev = ["pytest"]

[tool.ruff]
line-length = 100
"""

MEMBER_PYPROJECT = """\
[project]
name = "{name}"
version = "0.1.0"
requires-python = ">=3.11"
dependencies = [{dependencies}]

[build-system]
requires = ["uv_build>=0.8,<0.14"]
build-backend = "uv_build"
{sources}"""


def write_member(root: Path, path: str, name: str, dependencies: list[str]) -> None:
    folder = root / path
    (folder / "src" / module(name)).mkdir(parents=True)
    (folder / "tests").mkdir()
    libraries = [dependency for dependency in dependencies if dependency in LIBRARIES]
    sources = "".join(f"{library} = {{ workspace = true }}\n" for library in libraries)
    (folder / "pyproject.toml").write_text(
        MEMBER_PYPROJECT.format(
            name=name,
            dependencies=", ".join(f'"{dependency}"' for dependency in dependencies),
            sources=f"\n[tool.uv.sources]\n{sources}" if sources else "",
        )
    )
    imports = "".join(f"import {module(dependency)}  # noqa: F401\n" for dependency in dependencies)
    (folder / "src" / module(name) / "__init__.py").write_text(imports)
    (folder / "tests" / "test_import.py").write_text(f"import {module(name)}  # noqa: F401\n")


def write_task_definition(folder: Path, service: str) -> None:
    """What the deploy fills in: the image, and the environment's name."""
    task = {
        "family": f"{service}-__ENVIRONMENT__",
        "containerDefinitions": [{"name": service, "image": "filled-in-by-the-deploy"}],
    }
    (folder / "infra" / "ecs").mkdir(parents=True)
    (folder / "infra" / "ecs" / "task-definition.json").write_text(json.dumps(task, indent=2))


def build_workspace(root: Path) -> Path:
    """The workspace in `root/repo` (committed, locked against the oldest releases), its index in
    `root/index`; returns the repository."""
    index = root / "index"
    index.mkdir(parents=True)
    for name, versions in THIRD_PARTY.items():
        publish(index, name, next(iter(versions)))
    repo = root / "repo"
    repo.mkdir()
    (repo / "pyproject.toml").write_text(ROOT_PYPROJECT.format(index=index.resolve().as_uri()))
    (repo / "README.md").write_text("# A synthetic workspace\n")
    (repo / "Dockerfile").write_text("FROM python:3.11-slim\nARG PACKAGE\n")
    (repo / "tools").mkdir()
    shutil.copy2(AFFECTED_MODULE, repo / "tools" / "affected.py")
    for library, dependencies in LIBRARIES.items():
        write_member(repo, f"lib/{library}", library, dependencies)
    for service in service_names():
        write_member(repo, f"projects/{service}", service, service_dependencies(service))
        database = "postgres" if service in DATABASE_SERVICES else "none"
        (repo / "projects" / service / ".copier-answers.yml").write_text(
            f"service_name: {service}\ndatabase: {database}\nhttp_port: '8000'\n"
            "workspace_member: true\n"
        )
        write_task_definition(repo / "projects" / service, service)
    uv_lock(repo)
    git("init", "--quiet", "--initial-branch=main", cwd=repo)
    git("add", "--all", cwd=repo)
    git("commit", "--quiet", "--message=The workspace", cwd=repo)
    return repo


def uv_lock(repo: Path, *args: str) -> None:
    run(["uv", "lock", "--quiet", "--offline", *args], cwd=repo)


# The fixed changes.


def append(repo: Path, path: str, text: str) -> None:
    with (repo / path).open("a") as file:
        file.write(text)


def replace(repo: Path, path: str, old: str, new: str) -> None:
    (repo / path).write_text((repo / path).read_text().replace(old, new))


def upgrade(package: str) -> Callable[[Path], None]:
    """A newer release of `package` published, and the lock moved to it (and only it)."""

    def change(repo: Path) -> None:
        settings = tomllib.loads((repo / "pyproject.toml").read_text())
        index = Path(settings["tool"]["uv"]["index"][0]["url"].removeprefix("file://"))
        publish(index, package, list(THIRD_PARTY[package])[-1])
        uv_lock(repo, "--upgrade-package", package)

    return change


@dataclass(frozen=True)
class Change:
    name: str
    make: Callable[[Path], None]
    affected: frozenset[str]
    deployed: frozenset[str]
    reason: tuple[str, str] | None
    """A member, and the reason it must be given."""


def _all_members() -> frozenset[str]:
    return frozenset([*LIBRARIES, *service_names()])


def services_among(members: frozenset[str]) -> frozenset[str]:
    return frozenset(name for name in members if name.startswith("service-"))


def _change(
    name: str,
    make: Callable[[Path], None],
    affected: frozenset[str],
    reason: tuple[str, str] | None,
) -> Change:
    return Change(name, make, affected, services_among(affected), reason)


CHANGES: list[Change] = [
    _change(
        "one service file",
        lambda repo: append(repo, "projects/service-05/src/service_05/__init__.py", "VALUE = 1\n"),
        frozenset({"service-05"}),
        ("service-05", "own files"),
    ),
    _change(
        "a library used by three services",
        lambda repo: append(repo, "lib/mail/src/mail/__init__.py", "SENDER = 'x'\n"),
        frozenset({"mail", *MAIL_USERS}),
        ("service-02", "uses lib/mail"),
    ),
    _change(
        "the bottom library, used by all",
        lambda repo: append(repo, "lib/base/src/base/__init__.py", "BASE = 1\n"),
        _all_members(),
        ("service-30", "uses lib/base"),
    ),
    _change(
        "the core's version in the lock",
        upgrade("smplkit-core"),
        frozenset(service_names()),
        ("service-11", "its locked closure changed: smplkit-core 1.0.0 → 1.1.0"),
    ),
    _change(
        "a third-party package used by one service",
        upgrade("orjson"),
        frozenset({ORJSON_USER}),
        (ORJSON_USER, "its locked closure changed: orjson 3.10.0 → 3.11.0"),
    ),
    Change(
        "a root tool config",
        lambda repo: replace(repo, "pyproject.toml", "line-length = 100", "line-length = 99"),
        _all_members(),
        frozenset(),
        ("money", "root tool config"),
    ),
    _change(
        "a README at the root",
        lambda repo: append(repo, "README.md", "\nMore words.\n"),
        frozenset(),
        None,
    ),
]


def commit_change(repo: Path, change: Change) -> None:
    change.make(repo)
    git("add", "--all", cwd=repo)
    git("commit", "--quiet", f"--message={change.name}", cwd=repo)


@dataclass(frozen=True)
class History:
    """The workspace's repository with every change of CHANGES committed in turn: `commits[name]`
    is the commit of the change, `base` the one before the first."""

    repo: Path
    base: str
    commits: dict[str, str]

    def before(self, change: Change) -> str:
        names = [change.name for change in CHANGES]
        index = names.index(change.name)
        return self.base if index == 0 else self.commits[names[index - 1]]

    def checkout(self, change: Change, destination: Path) -> Path:
        """A worktree at the change's commit, its branch main (as a push to main leaves it)."""
        git(
            "worktree",
            "add",
            "--quiet",
            "--detach",
            str(destination),
            self.commits[change.name],
            cwd=self.repo,
        )
        return destination


def build_history(root: Path, prepare: Callable[[Path], None] | None = None) -> History:
    """The workspace, `prepare`d (and committed) if given, then every change of CHANGES."""
    repo = build_workspace(root)
    if prepare is not None:
        prepare(repo)
        git("add", "--all", cwd=repo)
        git("commit", "--quiet", "--message=Prepared", cwd=repo)
    base = git("rev-parse", "HEAD", cwd=repo).strip()
    commits = {}
    for change in CHANGES:
        commit_change(repo, change)
        commits[change.name] = git("rev-parse", "HEAD", cwd=repo).strip()
    return History(repo, base, commits)
