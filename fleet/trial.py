"""`fleet test-core`: every service of the fleet checked against a candidate core before it is
published (fleet/candidate.py builds the candidate).

Each repository is cloned (its last commit) and its lock moved to the candidate: the core's
`[tool.uv.sources]` entry points at the candidate's index, which holds nothing else, and `uv lock
--upgrade-package <core>` moves the core alone; every other locked package stays as it is (a
candidate that needs another version of one says so in the result). The core is installed from
the built wheel, never editable. Then each service that installs the core runs its own `make check`
there: a single-service repository at its root, each member of a workspace (`make check
PACKAGE=<member>`), isolated members with their own lock included. `core-release-guard`, which
refuses any lock holding an unreleased core, is left out of that run alone (`make --old-file`).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tomlkit
from packaging.utils import canonicalize_name
from packaging.version import Version
from rich.console import Console

from fleet.candidate import Candidate
from fleet.commands import QUIET_GIT, CommandError, git
from fleet.isolated import isolated_members
from fleet.probe import UnreadableError, clone_url, read_answers, read_tree
from fleet.report import Columns, markdown_table, rich_table
from fleet.sources import Repository

CANDIDATE_INDEX = "fleet-candidate"
"""The name of the candidate's index in a clone's pyproject.toml."""
GUARD = "core-release-guard"
CHECK = ["make", "--no-print-directory", "--keep-going", f"--old-file={GUARD}", "check"]
"""The service's own `make check`, every step run even after one fails (so a type error does not
hide the failing tests), without the guard that refuses an unreleased core."""
CHECK_AFTER_OPENAPI = [*CHECK[:-1], "core-openapi", "check"]
"""For a service with an API: its openapi.json written again first, as the core-bump workflow does,
so a candidate that only changes the document it serves (a new declared error) breaks nothing."""
PASSED, FAILED, NOT_RUN = "passed", "failed", "could not run"
FAILING_TEST = re.compile(r"^(?:FAILED|ERROR) (\S+)", re.MULTILINE)
"""pytest's short summary (`-ra`, which every service's pytest configuration adds)."""
PYTEST_REASON = re.compile(r"^E +(\S.*)$", re.MULTILINE)
"""The first line of pytest's explanation of a failure."""
MYPY_ERROR = re.compile(r"^(\S+:\d+: error: .*)$", re.MULTILINE)
RUFF_ERROR = re.compile(r"^([A-Z]+\d+ .*)\n\s*--> (\S+)$", re.MULTILINE)
"""ruff's finding: its rule and message, then where."""
MEMBER_FOLDERS = ("projects/", "lib/")
UNSET = ("VIRTUAL_ENV", "UV_LOCKED", "UV_FROZEN", "UV_PROJECT_ENVIRONMENT")
"""Not passed on: fleet's own environment, and what would keep the lock from moving."""


class TrialError(Exception):
    """A repository cannot be tried; the message says why."""


@dataclass
class Trial:
    """One service's line of the result."""

    service: str
    repository: str
    status: str = NOT_RUN
    detail: str = ""
    """The first failing test (or error) when failed; why, when it could not run."""
    locked: str | None = None
    """The core the service's lock holds."""
    candidate: str | None = None
    moved: list[str] = field(default_factory=list)
    """Other locked packages the candidate moved (it needs another version of them)."""
    seconds: float | None = None
    log: str = ""
    """What moving the lock and the check printed."""


@dataclass
class Check:
    """A service's `make check`, to run in its prepared clone."""

    trial: Trial
    command: list[str]
    cwd: Path


def environment() -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if key not in UNSET}
    return env | QUIET_GIT


def run_logged(command: list[str], cwd: Path) -> tuple[int, str]:
    """The command's exit status and its output (stdout and stderr as they came)."""
    done = subprocess.run(  # noqa: S603 - make and uv, in a clone of the fleet's repository
        command,
        cwd=cwd,
        env=environment(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        check=False,
    )
    return done.returncode, done.stdout.decode(errors="replace")


def locked_packages(lock: str) -> dict[str, dict[str, Any]]:
    """uv.lock's packages by name (the first of a name locked at several versions)."""
    packages: dict[str, dict[str, Any]] = {}
    for package in tomllib.loads(lock).get("package", []):
        packages.setdefault(package["name"], package)
    return packages


def installs(packages: Mapping[str, Mapping[str, Any]], name: str, wanted: str) -> bool:
    """Whether `name` installs `wanted`: through its dependencies, extras or its own dependency
    groups (what its checks install), and theirs, transitively."""
    pending, seen = [(name, True)], set()
    while pending:
        current, with_groups = pending.pop()
        if current == wanted:
            return True
        if current in seen or current not in packages:
            continue
        seen.add(current)
        package = packages[current]
        edges = list(package.get("dependencies", []))
        groups = [package.get("optional-dependencies", {})]
        groups += [package.get("dev-dependencies", {})] if with_groups else []
        edges += [edge for named in groups for group in named.values() for edge in group]
        pending += [(edge["name"], False) for edge in edges]
    return False


def local_path(package: Mapping[str, Any]) -> str | None:
    source = package.get("source", {})
    for kind in ("editable", "virtual", "directory"):
        if kind in source:
            return str(source[kind])
    return None


def services_of(
    project: Path, clone: Path, repository: Repository, core: str, *, workspace: bool
) -> list[Check]:
    """The services a lock folder holds that install the core: the repository itself (a single
    service), a workspace's members, or an isolated member."""
    packages = locked_packages((project / "uv.lock").read_text())
    folder = project.relative_to(clone).as_posix()
    if not workspace:
        command = CHECK_AFTER_OPENAPI if (clone / "openapi.json").exists() else CHECK
        return [Check(Trial(repository.name, repository.url), command, clone)]
    if folder != ".":
        project_name = tomllib.loads((project / "pyproject.toml").read_text())["project"]["name"]
        name = canonicalize_name(str(project_name))
        chosen: list[tuple[str, str]] = [(name, folder)] if installs(packages, name, core) else []
    else:
        chosen = [
            (name, path)
            for name, package in sorted(packages.items())
            if (path := local_path(package))
            and path.startswith(MEMBER_FOLDERS)
            and installs(packages, name, core)
        ]
    return [
        Check(
            Trial(f"{repository.name}/{path}", repository.url),
            [*CHECK_AFTER_OPENAPI, f"PACKAGE={name}"],
            clone,
        )
        for name, path in chosen
    ]


def redirect(project: Path, candidate: Candidate) -> None:
    """The core's source pointed at the candidate's index, in the project's pyproject.toml."""
    path = project / "pyproject.toml"
    document = tomlkit.parse(path.read_text())
    uv: Any = document.get("tool", {}).get("uv", {})
    sources = uv.get("sources", {})
    key = next(
        (key for key in sources if canonicalize_name(key) == canonicalize_name(candidate.name)),
        None,
    )
    if key is None or "index" not in sources[key]:
        raise TrialError(
            f"{path.name} does not resolve {candidate.name} from an index ([tool.uv.sources])"
        )
    uv.setdefault("index", tomlkit.aot()).append(
        {"name": CANDIDATE_INDEX, "url": candidate.index_url, "explicit": True}
    )
    source = tomlkit.inline_table()
    source["index"] = CANDIDATE_INDEX
    sources[key] = source
    path.write_text(tomlkit.dumps(document))


def move_lock(project: Path, candidate: Candidate) -> tuple[str | None, list[str], str]:
    """The lock moved to the candidate: (the core it held, the other packages that moved, uv's
    output)."""
    lock = project / "uv.lock"
    before = locked_packages(lock.read_text())
    redirect(project, candidate)
    status, output = run_logged(["uv", "lock", "--upgrade-package", candidate.name], project)
    if status != 0:
        lines = [re.sub(r"^\W+", "", line) for line in output.splitlines() if line.strip()]
        raise TrialError("uv lock: " + " ".join(lines)[-400:])
    after = locked_packages(lock.read_text())
    core = canonicalize_name(candidate.name)
    locked_now = after.get(core, {}).get("version")
    if locked_now is None or Version(locked_now) != Version(candidate.version):
        raise TrialError(f"uv lock chose {candidate.name} {locked_now}, not the candidate")
    versions = {
        name: (before.get(name, {}).get("version", "-"), after.get(name, {}).get("version", "-"))
        for name in before.keys() | after.keys()
        if name != core and not local_path(after.get(name) or before[name])
    }
    moved = [f"{name} {old} → {new}" for name, (old, new) in sorted(versions.items()) if old != new]
    return before.get(core, {}).get("version"), moved, output


def prepare(repository: Repository, folder: Path, candidate: Candidate) -> list[Check | Trial]:
    """The repository cloned into `folder`, each of its locks moved to the candidate: a check for
    each service that installs the core, or a line saying why a service cannot be tried."""
    clone = folder / "clone"
    try:
        git("clone", "--quiet", "--depth=1", clone_url(repository.url), str(clone))
    except CommandError as error:
        return [Trial(repository.name, repository.url, detail=f"unreachable: {error}")]
    try:
        tree = read_tree(clone)
        answers = read_answers(tree, "")
    except (CommandError, UnreadableError) as error:
        return [Trial(repository.name, repository.url, detail=str(error))]
    if answers.get("core_source") == "workspace":
        return [
            Trial(
                repository.name,
                repository.url,
                detail="keeps the core in lib/ (core_source: workspace): no index to redirect",
            )
        ]
    workspace = answers.get("layout") == "workspace"
    isolated = isolated_members(tree.files) if workspace else []
    items: list[Check | Trial] = []
    for project in [clone, *(clone / member for member in isolated)]:
        try:
            checks = services_of(
                project, clone, repository, canonicalize_name(candidate.name), workspace=workspace
            )
        except (OSError, KeyError, tomllib.TOMLDecodeError) as error:
            relative = project.relative_to(clone).as_posix()
            name = repository.name if relative == "." else f"{repository.name}/{relative}"
            items.append(Trial(name, repository.url, detail=f"unreadable lock: {error}"))
            continue
        try:
            locked, moved, output = move_lock(project, candidate)
        except (TrialError, OSError, tomllib.TOMLDecodeError) as error:
            for check in checks:
                check.trial.detail = str(error)
            items += [check.trial for check in checks]
            continue
        for check in checks:
            check.trial.locked, check.trial.moved = locked, moved
            check.trial.candidate, check.trial.log = candidate.version, output
        items += checks
    if not items:
        items.append(Trial(repository.name, repository.url, detail="no member installs the core"))
    checks = [item for item in items if isinstance(item, Check)]
    if len(checks) > 1:
        # The members' checks share the root's environment: made once, before they run at once.
        status, output = run_logged(["uv", "sync", "--quiet"], clone)
        if status != 0:
            for check in checks:
                check.trial.detail = f"uv sync: {output.strip()[-300:]}"
            return [item.trial if isinstance(item, Check) else item for item in items]
    return items


def run_check(check: Check) -> Trial:
    """The service's `make check` against the candidate: passed, or failed with the first failing
    test (else the first error)."""
    trial = check.trial
    started = time.monotonic()
    status, output = run_logged(check.command, check.cwd)
    trial.seconds = time.monotonic() - started
    trial.log += f"$ {' '.join(check.command)}\n{output}"
    trial.status = PASSED if status == 0 else FAILED
    if status != 0:
        trial.detail = first_failure(output)
    return trial


def first_failure(output: str) -> str:
    tests = FAILING_TEST.findall(output)
    if tests:
        more = f" (and {len(tests) - 1} more)" if len(tests) > 1 else ""
        reason = PYTEST_REASON.search(output)
        # The scratch clone's paths in the explanation say nothing to the reader.
        explained = re.sub(r" \(/[^)]*\)", "", reason[1])[:200] if reason else ""
        return str(tests[0]) + more + (f": {explained}" if explained else "")
    mypy = MYPY_ERROR.search(output)
    if mypy:
        return mypy[1]
    ruff = RUFF_ERROR.search(output)
    if ruff:
        return f"{ruff[2]}: {ruff[1]}"
    lines = [line for line in output.splitlines() if line.strip()]
    return lines[-1] if lines else "make check failed"


def log_name(service: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", service) + ".log"


# The result, in the report's forms.

COLUMNS: Columns = (
    ("service", "Service"),
    ("result", "Result"),
    ("detail", "First failing test, or why it could not run"),
    ("core", "Core locked → candidate"),
    ("seconds", "Check (s)"),
)


def cells(trial: Trial) -> dict[str, str]:
    detail = trial.detail
    if trial.moved:
        detail += ("; " if detail else "") + "the candidate also moved " + ", ".join(trial.moved)
    return {
        "service": trial.service,
        "result": trial.status,
        "detail": detail,
        "core": f"{trial.locked or '?'} → {trial.candidate}" if trial.candidate else "",
        "seconds": "" if trial.seconds is None else f"{trial.seconds:.0f}",
    }


def summary(trials: list[Trial], candidate: Candidate) -> str:
    counts = {
        status: sum(t.status == status for t in trials) for status in (PASSED, FAILED, NOT_RUN)
    }
    return f"{candidate.name} {candidate.version}: " + ", ".join(
        f"{count} {status}" for status, count in counts.items()
    )


def terminal(trials: list[Trial], candidate: Candidate, console: Console) -> None:
    red = [trial.status != PASSED for trial in trials]
    title = f"The fleet on {candidate.name} {candidate.version}"
    console.print(rich_table(title, COLUMNS, [cells(trial) for trial in trials], red))
    console.print(summary(trials, candidate), highlight=False)


def markdown(trials: list[Trial], candidate: Candidate) -> str:
    lines = [
        f"# The fleet on {candidate.name} {candidate.version}",
        "",
        summary(trials, candidate) + ".",
        "",
        *markdown_table(COLUMNS, [cells(trial) for trial in trials]),
    ]
    return "\n".join(lines) + "\n"


def as_json(trials: list[Trial], candidate: Candidate) -> str:
    document = {
        "core": candidate.name,
        "candidate": candidate.version,
        "services": [
            {
                "service": trial.service,
                "repository": trial.repository,
                "status": trial.status,
                "detail": trial.detail,
                "core_locked": trial.locked,
                "candidate": trial.candidate,
                "moved": trial.moved,
                "seconds": trial.seconds,
                "log": log_name(trial.service),
            }
            for trial in trials
        ],
    }
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"
