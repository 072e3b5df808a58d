"""The members of this workspace a change can break, and the services whose image it changes.

    python tools/affected.py [--base REF] [--format text|json] [--max-jobs N]

compares the working tree with BASE (by default origin/main; from where HEAD forked off it) and
decides, for every member (projects/* and lib/*), with a reason:

- its own files changed ("own files"; "own tests" when only its tests/ did);
- a workspace library in its dependency closure changed, read from uv.lock's package graph, so
  a library's dependants are found transitively ("uses lib/money");
- the third-party part of its closure changed: every package it installs, by name, version and
  source, from uv.lock at BASE and now ("its locked closure changed: pydantic 2.11.0 → 2.12.0"),
  so a lock change that moves a package only one service uses affects only that service;
- a file that shapes every member changed: SHARED_INPUTS below, the one list of them.

An isolated member (one the root's `[tool.uv.workspace] exclude` leaves out, with a lock of its
own) is decided the same way from its own uv.lock: the workspace libraries it installs (path
sources), and its third-party closure at BASE and now.

Anything else (a README at the root, docs) affects nothing. An empty BASE (`--base ''`) affects
everything: a full run. A service is deployed when its image inputs changed: its files other
than its tests, a library or package it installs, or a shared input marked as part of every image.

The JSON is a GitHub Actions matrix, `{"include": [{"member", "path", "service", "database",
"deploy", "members", "reasons"}]}`. A matrix holds at most 256 jobs: past --max-jobs (256)
affected members, each entry checks a batch of them (`members`, space-separated).
`--deploys` prints the services to deploy instead, one entry each.
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import os
import re
import subprocess
import sys
import tomllib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SHARED_INPUTS: dict[str, tuple[str, bool]] = {
    "Dockerfile": ("the shared Dockerfile", True),
    ".dockerignore": ("the shared Dockerfile", True),
    ".python-version": ("the Python version", True),
    "ruff.toml": ("root tool config", False),
    "config/": ("root tool config", False),
    "Makefile": ("the workspace's Makefile", False),
    ".pre-commit-config.yaml": ("the pre-commit hooks", False),
    ".github/": ("the CI workflows", False),
    "tools/": ("the workspace's tools", False),
}
"""Paths (a trailing / for a folder) whose change affects every member: (reason, whether it
changes every service's image). The root pyproject.toml is read, not listed: see ROOT_SETTINGS."""

ROOT_SETTINGS: dict[str, tuple[str, bool]] = {
    "tool.uv": ("the uv workspace settings", True),
    "project": ("the workspace root's project", True),
    "build-system": ("the workspace root's project", True),
    "dependency-groups": ("the dev tools", False),
    "tool": ("root tool config", False),
}
"""Tables of the root pyproject.toml: a change to one affects every member (most specific
first). A comment or a reordering changes none of them, and affects nothing."""

LOCK = "uv.lock"
ROOT_PYPROJECT = "pyproject.toml"
MAX_JOBS = 256
"""GitHub Actions' limit of jobs per matrix."""
SERVICES = "projects/"
TESTS = "tests/"
ROOT_TOOLS = ""
"""The name the root's dev tools go by among the locked packages (no package has it)."""

Locked = dict[str, dict[str, Any]]
"""uv.lock's packages by name (a name locked at several versions keeps them all in `forks`)."""


class AffectedError(Exception):
    """A problem the user must fix (an unknown base, a broken lock), said in one line."""


@dataclass
class Member:
    name: str
    path: str
    reasons: list[str] = field(default_factory=list)
    deploy: bool = False

    @property
    def service(self) -> bool:
        return self.path.startswith(SERVICES)

    def affect(self, reason: str, *, deploy: bool) -> None:
        if reason not in self.reasons:
            self.reasons.append(reason)
        self.deploy = self.deploy or (deploy and self.service)


# git.


def git(*args: str) -> str:
    result = subprocess.run(["git", *args], capture_output=True, text=True, check=False)  # noqa: S603
    if result.returncode != 0:
        raise AffectedError(f"git {' '.join(args)}: {result.stderr.strip()}")
    return result.stdout


def fork_point(base: str) -> str:
    """Where HEAD forked off BASE: a pull request is compared with what it started from."""
    try:
        return git("merge-base", base, "HEAD").strip()
    except AffectedError as error:
        raise AffectedError(
            f"the base {base!r} is not a commit of this clone ({error}); fetch it (the CI "
            "checkout needs fetch-depth: 0), or run every member: make affected BASE= "
            "(--base '')"
        ) from None


def changed_files(base: str) -> list[str]:
    """Files changed since `base` in the working tree (committed or not), and new untracked ones.
    Renames count at both paths."""
    changed = git("diff", "--name-only", "--no-renames", "-z", base).split("\0")
    untracked = git("ls-files", "--others", "--exclude-standard", "-z").split("\0")
    return sorted({path for path in [*changed, *untracked] if path})


def at_base(base: str, path: str) -> str | None:
    """The file as it was at `base`; None where it did not exist."""
    try:
        return git("show", f"{base}:{path}")
    except AffectedError:
        return None


# uv.lock.


def read_lock(text: str | None) -> Locked:
    if text is None:
        return {}
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise AffectedError(f"{LOCK} is not valid TOML: {error}") from None
    packages: Locked = {}
    for package in document.get("package", []):
        packages.setdefault(package["name"], {"forks": []})["forks"].append(package)
    # The dev tools of the root: its dependency groups, and its own project's when it has one.
    groups = dict(document.get("manifest", {}).get("dependency-groups", {}))
    for entry in packages.values():
        for package in entry["forks"]:
            if local_path(package) == ".":
                groups["root"] = list(edges(package, dev=True))
    packages[ROOT_TOOLS] = {"forks": [{"dev-dependencies": groups}]}
    return packages


def local_path(package: Mapping[str, Any]) -> str | None:
    """The folder of a workspace member (its source is a path in the workspace), else None."""
    source = package.get("source", {})
    for kind in ("editable", "virtual", "directory"):
        if kind in source:
            return str(source[kind])
    return None


def members_of(locked: Locked, folder: str = ".") -> dict[str, str]:
    """Workspace members by name: their folder, under projects/ or lib/ (the lock's paths are
    relative to `folder`, the lock's own)."""
    found = {}
    for name, entry in locked.items():
        for package in entry["forks"]:
            path = local_path(package)
            path = path and os.path.normpath(Path(folder, path))
            if path and path.startswith((SERVICES, "lib/")):
                found[name] = path
    return found


def isolated_members(root: Path = Path()) -> list[str]:
    """The folders of the members the root pyproject.toml leaves out of the uv workspace
    (`[tool.uv.workspace] exclude`), each with its own lock (README: Where one lock can't hold)."""
    try:
        document = tomllib.loads((root / ROOT_PYPROJECT).read_text())
    except (OSError, tomllib.TOMLDecodeError):
        return []
    excluded = document.get("tool", {}).get("uv", {}).get("workspace", {}).get("exclude", [])
    projects = [
        path.parent.relative_to(root).as_posix() for path in sorted(root.glob("*/*/pyproject.toml"))
    ]
    return [
        folder
        for folder in projects
        if any(fnmatch.fnmatchcase(folder, str(pattern).rstrip("/")) for pattern in excluded)
    ]


def edges(package: Mapping[str, Any], *, dev: bool) -> Iterable[Mapping[str, Any]]:
    yield from package.get("dependencies", [])
    for extra in package.get("optional-dependencies", {}).values():
        yield from extra
    if dev:
        for group in package.get("dev-dependencies", {}).values():
            yield from group


def closure(locked: Locked, name: str, *, dev: bool) -> dict[str, set[tuple[str, str]]]:
    """Everything `name` installs (itself included): name -> {(version, source)}. With `dev`, its
    own dependency groups too (what its checks install), not those of what it depends on."""
    found: dict[str, set[tuple[str, str]]] = {}
    pending = [(name, dev)]
    while pending:
        current, with_groups = pending.pop()
        if current in found or current not in locked:
            continue
        forks = locked[current]["forks"]
        found[current] = {
            (str(package.get("version", "")), json.dumps(package.get("source", {}), sort_keys=True))
            for package in forks
        }
        for package in forks:
            pending.extend((edge["name"], False) for edge in edges(package, dev=with_groups))
    return found


def version_change(
    name: str, before: set[tuple[str, str]] | None, after: set[tuple[str, str]] | None
) -> str:
    def versions(found: set[tuple[str, str]] | None) -> str:
        return ", ".join(sorted(version or "?" for version, _ in found or ()))

    if not before:
        return f"{name} {versions(after)} added"
    if not after:
        return f"{name} {versions(before)} removed"
    if versions(before) == versions(after):
        return f"{name} {versions(after)} from another source"
    return f"{name} {versions(before)} → {versions(after)}"


def closure_changes(
    before: Locked, after: Locked, name: str, members: Mapping[str, str], *, dev: bool
) -> list[str]:
    """The third-party packages `name` installs that differ between the two locks."""
    old = closure(before, name, dev=dev)
    new = closure(after, name, dev=dev)
    return [
        version_change(package, old.get(package), new.get(package))
        for package in sorted(old.keys() | new.keys())
        if package not in members and old.get(package) != new.get(package)
    ]


# Deciding.


def owner(path: str, members: Mapping[str, str]) -> str | None:
    """The member whose folder holds `path` (the deepest one)."""
    holders = [
        name for name, folder in members.items() if path.startswith(folder.rstrip("/") + "/")
    ]
    return max(holders, key=lambda name: len(members[name]), default=None)


def shared_input(path: str) -> tuple[str, bool] | None:
    for pattern, effect in SHARED_INPUTS.items():
        if path == pattern or (pattern.endswith("/") and path.startswith(pattern)):
            return effect
    return None


def root_settings(text: str | None) -> dict[str, object]:
    """The root pyproject.toml's tables of ROOT_SETTINGS, each less the ones listed before it."""
    try:
        document: dict[str, object] = tomllib.loads(text or "")
    except tomllib.TOMLDecodeError as error:
        raise AffectedError(f"{ROOT_PYPROJECT} is not valid TOML: {error}") from None
    found: dict[str, object] = {}
    for dotted in ROOT_SETTINGS:
        table: object = document
        for key in dotted.split("."):
            table = table.get(key) if isinstance(table, dict) else None
        inner = {other.removeprefix(f"{dotted}.") for other in found if other.startswith(dotted)}
        if isinstance(table, dict):
            table = {key: value for key, value in table.items() if key not in inner}
        found[dotted] = table
    return found


def root_settings_changes(before: str | None, after: str | None) -> list[tuple[str, bool]]:
    """(reason, changes images) for each table of ROOT_SETTINGS that differs."""
    old, new = root_settings(before), root_settings(after)
    return [effect for dotted, effect in ROOT_SETTINGS.items() if old[dotted] != new[dotted]]


def decide(base: str) -> list[Member]:
    """Every member of the workspace now, with the reasons it is affected (none: not affected)."""
    if not Path(LOCK).exists():
        raise AffectedError(f"no {LOCK} at the workspace's root: run `uv lock`")
    locked = read_lock(Path(LOCK).read_text())
    members = {name: Member(name, path) for name, path in sorted(members_of(locked).items())}
    own_locks: dict[str, tuple[Member, Locked]] = {}
    for folder in isolated_members():
        own = read_lock(Path(folder, LOCK).read_text() if Path(folder, LOCK).exists() else None)
        for name, path in members_of(own, folder).items():
            if path == folder:
                members[name] = Member(name, path)
                own_locks[folder] = (members[name], own)
    if not base:
        for member in members.values():
            member.affect("a full run (no base to compare with)", deploy=True)
        return list(members.values())
    start = fork_point(base)
    shipped = file_changes(members, start)
    before = read_lock(at_base(start, LOCK))
    isolated = {member.name for member, _ in own_locks.values()}
    lock_changes([m for m in members.values() if m.name not in isolated], shipped, before, locked)
    for folder, (member, own) in own_locks.items():
        own_before = read_lock(at_base(start, f"{folder}/{LOCK}"))
        lock_changes([member], shipped, own_before, own, folder)
    paths = {**members_of(before), **members_of(locked)}
    tools = closure_changes(before, locked, ROOT_TOOLS, paths, dev=True)
    for member in members.values() if tools else ():
        member.affect(f"the dev tools changed: {', '.join(tools)}", deploy=False)
    return list(members.values())


def file_changes(members: Mapping[str, Member], start: str) -> dict[str, str]:
    """Marks the members whose own files, or a shared input, changed; returns the members whose
    shipped files (not only their tests) changed: name -> folder."""
    paths = {name: member.path for name, member in members.items()}
    shipped: dict[str, str] = {}
    for path in changed_files(start):
        name = owner(path, paths)
        if name is not None:
            tests_only = path.startswith(f"{paths[name].rstrip('/')}/{TESTS}")
            members[name].affect("own tests" if tests_only else "own files", deploy=not tests_only)
            if not tests_only:
                shipped[name] = paths[name]
            continue
        if path == ROOT_PYPROJECT:
            now = Path(path).read_text() if Path(path).exists() else None
            effects = root_settings_changes(at_base(start, path), now)
        else:
            effects = [effect for effect in [shared_input(path)] if effect is not None]
        for reason, changes_images in effects:
            for member in members.values():
                member.affect(reason, deploy=changes_images)
    return shipped


def lock_changes(
    members: Iterable[Member],
    shipped: Mapping[str, str],
    before: Locked,
    locked: Locked,
    folder: str = ".",
) -> None:
    """Marks the members a changed library reaches through the lock's graph (the lock of
    `folder`), and those whose locked third-party closure differs from BASE's."""
    paths = {**members_of(before, folder), **members_of(locked, folder)}
    for member in members:
        runtime = closure(locked, member.name, dev=False)
        checked = closure(locked, member.name, dev=True)
        for library in sorted(shipped.keys() & checked.keys() - {member.name}):
            member.affect(f"uses {shipped[library]}", deploy=library in runtime)
        image_changes = closure_changes(before, locked, member.name, paths, dev=False)
        if image_changes:
            member.affect(f"its locked closure changed: {', '.join(image_changes)}", deploy=True)
        check_changes = [
            change
            for change in closure_changes(before, locked, member.name, paths, dev=True)
            if change not in image_changes
        ]
        if check_changes:
            member.affect(f"its test tools changed: {', '.join(check_changes)}", deploy=False)


# Output.


def has_database(member: Member) -> bool:
    answers = Path(member.path) / ".copier-answers.yml"
    return (
        answers.exists()
        and re.search(r"^database:\s*['\"]?postgres['\"]?\s*$", answers.read_text(), re.MULTILINE)
        is not None
    )


def entry(member: Member) -> dict[str, Any]:
    return {
        "member": member.name,
        "path": member.path,
        "service": member.service,
        "database": has_database(member),
        "deploy": member.deploy,
        "members": member.name,
        "reasons": "; ".join(member.reasons),
    }


def batched(entries: list[dict[str, Any]], max_jobs: int) -> list[dict[str, Any]]:
    """At most `max_jobs` entries: past it, each checks a batch of members in turn."""
    if len(entries) <= max_jobs:
        return entries
    batches = [entries[number::max_jobs] for number in range(max_jobs)]
    return [
        {
            "member": f"batch {number} of {max_jobs}",
            "path": " ".join(item["path"] for item in batch),
            "service": any(item["service"] for item in batch),
            "database": any(item["database"] for item in batch),
            "deploy": any(item["deploy"] for item in batch),
            "members": " ".join(item["member"] for item in batch),
            "reasons": "; ".join(f"{item['member']}: {item['reasons']}" for item in batch),
        }
        for number, batch in enumerate(batches, start=1)
    ]


def text_report(members: Sequence[Member]) -> str:
    affected = [member for member in members if member.reasons]
    lines = [f"{len(affected)} of {len(members)} members affected"]
    for member in affected:
        deploy = ", deployed" if member.deploy else ""
        lines.append(f"  {member.path}{deploy}: {'; '.join(member.reasons)}")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base", default="origin/main", help="compare with this ref ('' = all)")
    parser.add_argument("--format", choices=("text", "json"), default="text")
    parser.add_argument("--deploys", action="store_true", help="the services to deploy (JSON)")
    parser.add_argument("--max-jobs", type=int, default=MAX_JOBS, help="matrix size limit")
    options = parser.parse_args(argv)
    if not 1 <= options.max_jobs <= MAX_JOBS:
        parser.error(f"--max-jobs must be between 1 and {MAX_JOBS}")
    # Paths are the workspace's: this file is its tools/affected.py.
    os.chdir(Path(__file__).resolve().parents[1])
    try:
        members = decide(options.base.strip())
    except AffectedError as error:
        sys.stderr.write(f"affected: {error}\n")
        return 2
    affected = [entry(member) for member in members if member.reasons]
    if options.deploys:
        deploys = [item for item in affected if item["deploy"]]
        if len(deploys) > options.max_jobs:
            sys.stderr.write(
                f"affected: {len(deploys)} services to deploy, more than one matrix holds "
                f"({options.max_jobs}); deploy this change in parts (README: Affected-only CI)\n"
            )
            return 2
        sys.stdout.write(json.dumps({"include": deploys}) + "\n")
    elif options.format == "json":
        sys.stdout.write(json.dumps({"include": batched(affected, options.max_jobs)}) + "\n")
    else:
        sys.stdout.write(text_report(members) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
