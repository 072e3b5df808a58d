"""Bringing lagging services to the template's newest release: through each service's own
template-update workflow, or locally, in a scratch clone, the way that workflow does."""

from __future__ import annotations

import importlib.metadata
import re
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from fleet.commands import CommandError, checked, git, run
from fleet.probe import CONFLICT_MARKER, LEFTOVER_SUFFIXES, Service
from fleet.sources import Repository

WORKFLOW = ".github/workflows/template-update.yml"
LISTED_FILES = 8
"""How many changed files an outcome names; `git status` in the kept clone lists them all."""


@dataclass
class Outcome:
    """What happened to one repository's services: clean, conflicted, failed, or started (its
    workflow was asked to run)."""

    repository: str
    services: list[str]
    status: str
    detail: str = ""
    conflicts: list[str] = field(default_factory=list)
    branch: str | None = None
    changes: str = ""
    """From which release to which, and the files the update changed."""
    kept: Path | None = None
    """Where the updated clone was kept, when it was not pushed."""


def copier_command(workflow: str | None) -> list[str]:
    """The Copier the service updates with (the version its template-update workflow pins): this
    environment's when it is that version, else uvx fetches it."""
    match = re.search(r'COPIER_VERSION: "([^"]+)"', workflow or "")
    wanted = match[1] if match else None
    try:
        installed = importlib.metadata.version("copier")
    except importlib.metadata.PackageNotFoundError:
        installed = None
    if installed and (wanted is None or wanted == installed):
        return [sys.executable, "-m", "copier"]
    return ["uvx", "--from", f"copier=={wanted}" if wanted else "copier", "copier"]


def conflicts(clone: Path) -> list[str]:
    """Files left to resolve, as the workflow lists them, whether the update left them or an
    earlier one did (committed): conflict markers, *.rej and *.team-edits files; and files git
    holds as unmerged."""
    marked = run(["git", "grep", "--untracked", "-lE", CONFLICT_MARKER, "--", "."], clone)
    named = [f"*{suffix}" for suffix in LEFTOVER_SUFFIXES]
    leftovers = run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "--", *named], clone
    )
    unmerged = run(["git", "diff", "--name-only", "--diff-filter=U"], clone)
    return sorted(
        set(marked.stdout.splitlines())
        | set(leftovers.stdout.splitlines())
        | set(unmerged.stdout.splitlines())
    )


def changed_files(clone: Path) -> list[str]:
    """The files the update changed, added or deleted, new ones listed one by one."""
    listing = run(["git", "status", "--porcelain", "--untracked-files=all"], clone).stdout
    return sorted(line[3:] for line in listing.splitlines())


def update_locally(
    repository: Repository, services: list[Service], scratch: Path, *, push: bool, keep_in: Path
) -> Outcome:
    """`copier update --trust --defaults --conflict inline --vcs-ref <latest>` in a full clone,
    for each of the repository's lagging services; the branch template-update/<version> pushed
    only when asked (and never for a failed update), else the clone kept in `keep_in`."""
    names = [service.name for service in services]
    latest = max((service.latest or "" for service in services), key=_release_key)
    clone = scratch / "clone"
    try:
        git("clone", "--quiet", repository.url, str(clone))
        git("config", "user.name", "fleet", cwd=clone)
        git("config", "user.email", "fleet@localhost", cwd=clone)
    except CommandError as error:
        return Outcome(repository.name, names, "failed", f"clone: {error}")
    workflow = clone / WORKFLOW
    copier = copier_command(workflow.read_text() if workflow.exists() else None)
    for service in services:
        folder = clone / _folder(repository, service)
        done = run(
            [*copier, "update", "--trust", "--defaults", "--quiet", "--conflict", "inline",
             "--vcs-ref", latest],
            folder,
        )  # fmt: skip
        if done.returncode != 0:
            lines = (done.stderr.strip() or done.stdout.strip()).splitlines() or ["copier failed"]
            return Outcome(repository.name, names, "failed", f"{service.name}: {lines[-1]}")
        if run(["git", "diff", "--quiet", "--", "pyproject.toml"], folder).returncode != 0:
            _lock(folder)
    found = conflicts(clone)
    outcome = Outcome(repository.name, names, "conflicted" if found else "clean", conflicts=found)
    current = services[0].version or "?"
    changed = changed_files(clone)
    more = len(changed) - LISTED_FILES
    listed = ", ".join(changed[:LISTED_FILES]) + (f" and {more} more" if more > 0 else "")
    outcome.changes = f"{current} to {latest}, {len(changed)} files changed: {listed}"
    if not push:
        outcome.kept = keep_in / repository.name.replace("/", "-")
        shutil.rmtree(outcome.kept, ignore_errors=True)
        shutil.move(clone, outcome.kept)
        return outcome
    outcome.branch = f"template-update/{latest.removeprefix('v')}"
    try:
        git("switch", "--quiet", "--create", outcome.branch, cwd=clone)
        git("add", "--all", cwd=clone)
        message = f"Update from the service template: {current} to {latest}"
        git("commit", "--quiet", "--no-verify", "--message", message, cwd=clone)
        git("push", "--quiet", "origin", outcome.branch, cwd=clone)
    except CommandError as error:
        outcome.status, outcome.detail = "failed", f"push: {error}"
    shutil.rmtree(clone, ignore_errors=True)
    return outcome


def start_workflow(repository: Repository, services: list[Service]) -> Outcome:
    """`gh workflow run template-update.yml` in the service's repository."""
    names = [service.name for service in services]
    if repository.github is None:
        return Outcome(repository.name, names, "failed", "not on GitHub: use --local")
    try:
        checked(["gh", "workflow", "run", "template-update.yml", "--repo", repository.github])
    except CommandError as error:
        return Outcome(repository.name, names, "failed", str(error))
    return Outcome(repository.name, names, "started", "template-update.yml")


def _lock(folder: Path) -> None:
    """As the workflow does: relock when the update changed pyproject.toml; a failure (a conflict
    in pyproject.toml) is left for whoever resolves the conflicts."""
    if shutil.which("uv"):
        run(["uv", "lock", "--quiet"], folder)


def _folder(repository: Repository, service: Service) -> str:
    relative = service.name.removeprefix(repository.name).strip("/")
    return str(PurePosixPath(relative)) if relative else "."


def _release_key(tag: str) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", tag))
