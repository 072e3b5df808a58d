"""The workspace's own commands; the Makefile's targets call them (`make help` lists those).

    workspace.py service NAME [--database postgres]   a service in projects/NAME, from the template
    workspace.py lib NAME                             an internal library in lib/NAME
    workspace.py add-lib SERVICE LIB                  SERVICE depends on the library LIB
    workspace.py check [--only typecheck|test] [MEMBER ...]
                                                      each member checked in its own environment
    workspace.py check-pins                           no member pins its own version of anything
    workspace.py isolate SERVICE                      SERVICE out of the one lock, with its own
    workspace.py update [--vcs-ref REF] [--conflict inline|rej]
                                                      `copier update` of the root and every service

Run from the root's environment (`uv run`): the standard library and the root's dev tools only.
"""

from __future__ import annotations

import argparse
import os
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml
from affected import isolated_members
from isolated import IsolationError, isolate

ROOT = Path(__file__).resolve().parent.parent
ANSWERS_FILE = ".copier-answers.yml"
INHERITED_ANSWERS = (
    "owner_team",
    "python_version",
    "aws_region",
    "aws_account_id",
    "ecs_cluster",
    "core_package",
    "core_module",
    "core_version",
    "core_index_url",
    "codeartifact_domain",
    "codeartifact_repository",
    "backstage_system",
    "github_organization",
    "github_repository",
    "shared_code_reviewers",
)
"""The root's answers a new service takes as its own: a team answers only what is new."""
MEMBER_ENVIRONMENTS = ROOT / ".venvs"
"""Each member's own environment, holding only what it declares: .venvs/<member>."""
NAME = re.compile(r"^[a-z][a-z0-9]*(-[a-z0-9]+)*$")
PINNED = re.compile(r"===?")
LEFT_BY_UPDATE = (".rej", ".team-edits")
UNMERGED = frozenset({"DD", "AU", "UD", "UA", "DU", "AA", "UU"})
"""`git status --porcelain` codes of a file a merge left unresolved."""
TOOL_FOLDERS = frozenset({".git", ".venv", ".venvs", "node_modules"})

LIBRARY_PYPROJECT = """\
[project]
name = "{name}"
version = "0.1.0"
description = "The {name} library of the {workspace} workspace."
requires-python = ">={python_version}"
# Everything the library imports, and nothing else: its tests run in an environment holding only
# these (make test PACKAGE={name}), so an undeclared import fails.
dependencies = []

[dependency-groups]
dev = [
  "mypy>=1.13",
  "pytest>=8.3",
]

[build-system]
requires = ["uv_build>=0.8.0,<0.14"]
build-backend = "uv_build"

[tool.mypy]
strict = true
files = ["src", "tests"]

[tool.pytest.ini_options]
testpaths = ["tests"]
addopts = ["-ra", "--strict-markers", "--strict-config", "--import-mode=importlib"]
xfail_strict = true
filterwarnings = ["error"]
"""
LIBRARY_INIT = '''\
"""The {name} library: code the workspace's services share. Services import it; it never imports a
service."""
'''
LIBRARY_IMPORT_TEST = '''\
"""Imports every module of the library, found from the tree rather than listed by hand.

A module that imports an undeclared dependency, or that cannot be imported at all, fails here even
when no other test reaches it.
"""

import importlib
import pkgutil

import pytest

import {module} as package

MODULES = sorted(
    [package.__name__]
    + [module.name for module in pkgutil.walk_packages(package.__path__, f"{{package.__name__}}.")]
)


@pytest.mark.parametrize("module_name", MODULES)
def test_module_imports(module_name: str) -> None:
    importlib.import_module(module_name)
'''

LIBRARY_CATALOG_INFO = """\
# The {name} library in the developer portal: Backstage's software catalog finds this file through
# the workspace's catalog-info.yaml (README: The developer portal).
apiVersion: backstage.io/v1alpha1
kind: Component
metadata:
  name: {name}
  description: The {name} library of the {workspace} workspace.
  annotations:
    github.com/project-slug: {repository}
    backstage.io/source-location: url:https://github.com/{repository}/tree/main/lib/{name}/
  tags:
    - python
spec:
  type: library
  lifecycle: production
  owner: group:{owner}
  system: {system}
"""


class WorkspaceError(RuntimeError):
    """A command cannot go on; the message says why and what to do."""


def tool_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment for uv and Copier: not the root's environment this script runs in."""
    env = {key: value for key, value in os.environ.items() if key != "VIRTUAL_ENV"}
    env.update(extra or {})
    return env


def run(
    args: Sequence[str | Path], *, cwd: Path = ROOT, env: Mapping[str, str] | None = None
) -> int:
    print(f"+ {shlex.join(map(str, args))}", flush=True)
    completed = subprocess.run(list(map(str, args)), cwd=cwd, env=tool_env(env), check=False)  # noqa: S603
    return completed.returncode


def run_or_fail(args: Sequence[str | Path], *, cwd: Path = ROOT) -> None:
    if run(args, cwd=cwd) != 0:
        raise WorkspaceError(
            f"`{shlex.join(map(str, args))}` failed in {cwd} (its output is above)."
        )


def root_answers() -> dict[str, Any]:
    answers = yaml.safe_load((ROOT / ANSWERS_FILE).read_text())
    if not isinstance(answers, dict):
        raise WorkspaceError(f"{ANSWERS_FILE} does not hold the workspace's answers.")
    return answers


def pyproject(folder: Path) -> dict[str, Any]:
    return tomllib.loads((folder / "pyproject.toml").read_text())


def members() -> dict[str, Path]:
    """Every member of the workspace by its package name, from the root's list of members."""
    patterns = pyproject(ROOT)["tool"]["uv"]["workspace"]["members"]
    found = {}
    for pattern in patterns:
        for folder in sorted(ROOT.glob(pattern)):
            if (folder / "pyproject.toml").is_file():
                found[pyproject(folder)["project"]["name"]] = folder
    return found


def member(name: str) -> Path:
    found = members()
    if name not in found:
        known = ", ".join(sorted(found)) or "none yet"
        raise WorkspaceError(f"No member of the workspace is named {name!r} (members: {known}).")
    return found[name]


def checked_name(kind: str, name: str) -> str:
    if not NAME.match(name) or len(name) > 40:  # noqa: PLR2004 - the template's own limit
        raise WorkspaceError(
            f"The {kind} name {name!r} must be kebab-case: lowercase letters and digits in words "
            "joined by single hyphens, starting with a letter, at most 40 characters."
        )
    if name in members():
        raise WorkspaceError(f"The workspace already has a member named {name!r}.")
    return name


def interactive() -> bool:
    return sys.stdin.isatty()


def copier_data(data: Mapping[str, Any]) -> list[str]:
    return [arg for key, value in data.items() for arg in ("--data", f"{key}={value}")]


def add_service(
    name: str, database: str | None, copier: str, workloads: Sequence[str] | None = None
) -> None:
    """Generate projects/NAME from the template release the root is on, then lock at the root."""
    checked_name("service", name)
    destination = ROOT / "projects" / name
    if destination.exists():
        raise WorkspaceError(f"{destination.relative_to(ROOT)} exists already.")
    answers = root_answers()
    core = ROOT / "lib" / str(answers["core_package"])
    if answers.get("core_source") == "workspace" and not (core / "pyproject.toml").is_file():
        raise WorkspaceError(
            f"The workspace keeps the core in {core.relative_to(ROOT)}/ (core_source: workspace), "
            "which holds no pyproject.toml yet: put the core's source there first (README: The "
            "shared core)."
        )
    data: dict[str, Any] = {key: answers[key] for key in INHERITED_ANSWERS if key in answers}
    data |= {"service_name": name, "workspace_member": "true"}
    if database:
        data["database"] = database
    if workloads:
        data["workloads"] = f"[{', '.join(workloads)}]"
    command = [*shlex.split(copier), "copy", "--trust", "--vcs-ref", str(answers["_commit"])]
    command += copier_data(data) + ([] if interactive() else ["--defaults"])
    run_or_fail([*command, str(answers["_src_path"]), destination])
    run_or_fail(["uv", "lock"])
    print(f"Service ready in projects/{name}: review it, `make check PACKAGE={name}`, commit.")


def add_library(name: str) -> None:
    """lib/NAME: an installable library with its import test, then lock at the root."""
    checked_name("library", name)
    folder = ROOT / "lib" / name
    if folder.exists():
        raise WorkspaceError(f"{folder.relative_to(ROOT)} exists already.")
    module = name.replace("-", "_")
    answers = root_answers()
    files = {
        "pyproject.toml": LIBRARY_PYPROJECT.format(
            name=name, workspace=answers["service_name"], python_version=answers["python_version"]
        ),
        f"src/{module}/__init__.py": LIBRARY_INIT.format(name=name),
        f"src/{module}/py.typed": "",
        "tests/test_imports.py": LIBRARY_IMPORT_TEST.format(module=module),
        "catalog-info.yaml": LIBRARY_CATALOG_INFO.format(
            name=name,
            workspace=answers["service_name"],
            repository=answers["github_repository"],
            owner=answers["owner_team"],
            system=answers["backstage_system"],
        ),
    }
    for path, text in files.items():
        (folder / path).parent.mkdir(parents=True, exist_ok=True)
        (folder / path).write_text(text)
    run_or_fail(["uv", "lock"])
    print(f"Library ready in lib/{name}: `make add-lib SERVICE=... LIB={name}` to use it.")


def add_library_to_service(service: str, library: str) -> None:
    """The library in the service's dependencies, as a workspace source (`uv add --package`)."""
    if not member(library).is_relative_to(ROOT / "lib"):
        raise WorkspaceError(f"{library!r} is not in lib/: services never import services.")
    member(service)
    run_or_fail(["uv", "add", "--package", service, library])


def declared_requirements(project: dict[str, Any]) -> Iterator[str]:
    yield from project.get("project", {}).get("dependencies", [])
    for requirements in project.get("project", {}).get("optional-dependencies", {}).values():
        yield from requirements
    for requirements in project.get("dependency-groups", {}).values():
        yield from (item for item in requirements if isinstance(item, str))


def pin_violations() -> list[str]:
    """What breaks the single version policy: a member's `==` pin, its own uv constraints or
    overrides, or a lock file anywhere but the root and the isolated members' folders."""
    violations = []
    isolated = isolated_members(ROOT)
    for name, folder in members().items():
        where = folder.relative_to(ROOT) / "pyproject.toml"
        project = pyproject(folder)
        violations += [
            f"{where}: {requirement!r} pins a version; give a range, the lock picks the version"
            for requirement in declared_requirements(project)
            if PINNED.search(requirement)
        ]
        uv = project.get("tool", {}).get("uv", {})
        violations += [
            f"{where}: [tool.uv] {key} of {name}'s own; declare it in the root's pyproject.toml"
            for key in ("constraint-dependencies", "override-dependencies")
            if key in uv and folder.relative_to(ROOT).as_posix() not in isolated
        ]
    allowed = {ROOT / "uv.lock", *(ROOT / folder / "uv.lock" for folder in isolated)}
    violations += [
        f"{lock.relative_to(ROOT)}: a lock below the root; the root's uv.lock is the only one "
        "(but for isolated members: make isolate)"
        for lock in ROOT.rglob("uv.lock")
        if lock not in allowed and not TOOL_FOLDERS.intersection(lock.relative_to(ROOT).parts)
    ]
    return violations


def check_pins() -> int:
    for folder in isolated_members(ROOT):
        print(
            f"{folder}: isolated, the exception to the one lock: its own uv.lock ([tool.uv."
            "workspace] exclude in pyproject.toml)"
        )
    violations = pin_violations()
    for violation in violations:
        print(violation, file=sys.stderr)
    if violations:
        print("One version of each dependency, in the root's uv.lock: fix these.", file=sys.stderr)
        return 1
    return 0


def lint(paths: Sequence[str | Path]) -> list[int]:
    """ruff, from the root's environment, with the workspace's one configuration."""
    return [
        run(["uv", "run", "--locked", "ruff", "check", *paths]),
        run(["uv", "run", "--locked", "ruff", "format", "--check", *paths]),
    ]


def check_member(name: str, folder: Path, steps: Sequence[str]) -> bool:
    """The member's checks: lint, then its type check and tests in an environment holding only
    what it declares (and its dev group), where an undeclared import fails."""
    results = lint([folder.relative_to(ROOT)]) if "lint" in steps else []
    environment = MEMBER_ENVIRONMENTS / name
    # An isolated member is installed from its own lock, a member from the root's.
    isolated = folder.relative_to(ROOT).as_posix() in isolated_members(ROOT)
    sync = ["uv", "sync", "--locked", "--exact", *([] if isolated else ["--package", name])]
    env = {"UV_PROJECT_ENVIRONMENT": str(environment)}
    if run(sync, cwd=folder if isolated else ROOT, env=env) != 0:
        return False
    if "typecheck" in steps:
        results.append(run([environment / "bin" / "mypy"], cwd=folder))
    if "test" in steps:
        results.append(run([environment / "bin" / "pytest"], cwd=folder))
    return not any(results)


def check(names: Sequence[str], only: str | None) -> int:
    """The named members' checks; without names, the whole workspace's lint and pin check once,
    then every member's type check and tests."""
    steps = [only] if only else ["lint", "typecheck", "test"]
    failed = []
    if not names and not only:
        steps = ["typecheck", "test"]
        results = [*lint(["."]), check_pins()]
        if any(results):
            failed.append("lint")
    chosen = {name: member(name) for name in names} if names else members()
    failed += [name for name, folder in chosen.items() if not check_member(name, folder, steps)]
    if failed:
        print(f"Failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


def git(*args: str, stdin: str | None = None) -> str:
    return subprocess.run(  # noqa: S603 - git, with the arguments of this script
        ["git", *args], cwd=ROOT, input=stdin, capture_output=True, text=True, check=True
    ).stdout


def left_to_resolve(folder: Path) -> list[str]:
    """What an update left in the folder for the team: unmerged files, *.rej, *.team-edits."""
    listing = git("status", "--porcelain", "--untracked-files=all", "--", str(folder))
    return [
        line[3:]
        for line in listing.splitlines()
        if line[:2] in UNMERGED or line.rstrip().endswith(LEFT_BY_UPDATE)
    ]


def set_aside_unmerged() -> list[str]:
    """Stage the files a folder's update left unmerged, as they are (conflict markers and all), and
    return their unmerged index entries: the next folder's `copier update` snapshots the index
    (`git write-tree`), which refuses unmerged files."""
    entries = [entry for entry in git("ls-files", "--unmerged", "-z").split("\0") if entry]
    paths = sorted({entry.split("\t", 1)[1] for entry in entries})
    if paths:
        git("add", "--", *paths)
    return entries


def restore_unmerged(entries: Sequence[str]) -> None:
    """Put the unmerged index entries back, so `git status` lists those files as unmerged."""
    paths = sorted({entry.split("\t", 1)[1] for entry in entries})
    removals = [f"0 {'0' * 40}\t{path}" for path in paths]
    git(
        "update-index", "--index-info", stdin="".join(f"{line}\n" for line in [*removals, *entries])
    )


def update_folders() -> list[Path]:
    """The root, then every service (each keeps its own answers file)."""
    services = sorted(path.parent for path in (ROOT / "projects").glob(f"*/{ANSWERS_FILE}"))
    return [ROOT, *services]


def update(copier: str, vcs_ref: str | None, conflict: str) -> int:
    """`copier update` of the root, then of each service, and what each left to resolve."""
    command = [*shlex.split(copier), "update", "--trust", "--skip-answered", "--conflict", conflict]
    command += ["--vcs-ref", vcs_ref] if vcs_ref else []
    command += [] if interactive() else ["--defaults"]
    report = []
    unmerged: list[str] = []
    for folder in update_folders():
        name = str(folder.relative_to(ROOT)) if folder != ROOT else ". (the root)"
        if run(command, cwd=folder) != 0:
            report.append((name, "failed", "see Copier's output above"))
        else:
            left = left_to_resolve(folder)
            report.append((name, "conflicts", ", ".join(left)) if left else (name, "clean", ""))
        unmerged += set_aside_unmerged()
    restore_unmerged(unmerged)
    print("\nUpdate report:")
    for name, outcome, detail in report:
        print(f"  {name:<30} {outcome:<10} {detail}".rstrip())
    if any(outcome == "conflicts" for _, outcome, _ in report):
        print("Resolve the conflicts (README: Updating from the template), then `make lock check`.")
    return 1 if any(outcome == "failed" for _, outcome, _ in report) else 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--copier", default="copier", help="how to run Copier")
    commands = parser.add_subparsers(dest="command", required=True)
    service = commands.add_parser("service")
    service.add_argument("name")
    service.add_argument("--database", choices=["none", "postgres"])
    # What it runs (copier.yml's workloads): `make worker` and `make job` give one of these.
    service.add_argument(
        "--workloads", type=lambda value: value.replace(",", " ").split(), metavar="api,worker,jobs"
    )
    commands.add_parser("lib").add_argument("name")
    add_lib = commands.add_parser("add-lib")
    add_lib.add_argument("service")
    add_lib.add_argument("library")
    checks = commands.add_parser("check")
    checks.add_argument("--only", choices=["typecheck", "test"])
    checks.add_argument("members", nargs="*")
    commands.add_parser("check-pins")
    commands.add_parser("isolate").add_argument("service")
    updates = commands.add_parser("update")
    updates.add_argument("--vcs-ref")
    updates.add_argument("--conflict", choices=["inline", "rej"], default="inline")
    args = parser.parse_args(argv)
    try:
        if args.command == "service":
            add_service(args.name, args.database, args.copier, args.workloads)
        elif args.command == "lib":
            add_library(args.name)
        elif args.command == "add-lib":
            add_library_to_service(args.service, args.library)
        elif args.command == "check":
            return check(args.members, args.only)
        elif args.command == "check-pins":
            return check_pins()
        elif args.command == "isolate":
            isolate(args.service, ROOT, members(), run_or_fail)
        else:
            return update(args.copier, args.vcs_ref, args.conflict)
    except (WorkspaceError, IsolationError) as error:
        print(error, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    if shutil.which("uv") is None:
        sys.exit("uv is not installed: install it (https://docs.astral.sh/uv/).")
    sys.exit(main())
