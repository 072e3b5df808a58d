"""Bringing lagging services to the template's newest release: through each service's own
template-update workflow, or locally, in a scratch clone, the way that workflow does."""

from __future__ import annotations

import importlib.metadata
import re
import shlex
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path

from fleet.commands import CommandError, checked, git, run, spawn
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
    """`copier update --trust --defaults --conflict inline --vcs-ref <latest>` in a full clone, of
    the service, or of a workspace's root and then every service in it (the workspace's own `make
    update`); the branch template-update/<version> pushed only when asked (and never for a failed
    update), else the clone kept in `keep_in`."""
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
    if any(service.workspace_root for service in services):
        failure = _update_workspace(clone, copier, latest)
    else:
        failure = _update_service(clone, copier, latest)
    if failure:
        return Outcome(repository.name, names, "failed", f"{services[0].name}: {failure}")
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


def _update_service(clone: Path, copier: list[str], latest: str) -> str | None:
    """The service's update, as its template-update workflow runs it; what failed, if it did."""
    done = run(
        [*copier, "update", "--trust", "--defaults", "--quiet", "--conflict", "inline",
         "--vcs-ref", latest],
        clone,
    )  # fmt: skip
    if done.returncode != 0:
        return _last_line(done.stderr or done.stdout)
    if run(["git", "diff", "--quiet", "--", "pyproject.toml"], clone).returncode != 0:
        _lock(clone)
    return None


def _update_workspace(clone: Path, copier: list[str], latest: str) -> str | None:
    """The workspace's own update (its `make update`, tools/workspace.py): the root, then every
    service folder, each one's conflicts kept for the team; what failed, if it did. Its stdin is
    no terminal, so Copier asks nothing, as in the workflow."""
    command = [sys.executable, "tools/workspace.py", "--copier", shlex.join(copier), "update",
               "--vcs-ref", latest, "--conflict", "inline"]  # fmt: skip
    done = spawn(command, clone, b"")
    if done.returncode != 0:
        return _last_line((done.stderr or done.stdout).decode(errors="replace"))
    changed = ["pyproject.toml", "projects/*/pyproject.toml"]
    if run(["git", "diff", "--quiet", "--", *changed], clone).returncode != 0:
        _lock(clone)
    return None


def _last_line(output: str) -> str:
    return (output.strip().splitlines() or ["copier failed"])[-1]


def _lock(folder: Path) -> None:
    """As the workflow does: relock when the update changed pyproject.toml; a failure (a conflict
    in pyproject.toml) is left for whoever resolves the conflicts."""
    if shutil.which("uv"):
        run(["uv", "lock", "--quiet"], folder)


def _release_key(tag: str) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", tag))
