"""Snapshots of this template as tagged git repositories, the way users consume it.

Users run `copier copy` against a released tag. Tests and benchmarks do the same against a snapshot
of the working tree, so uncommitted changes are tested and the developer's checkout is left alone.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

from harness.commands import REPO_ROOT, git

TEMPLATE_PATHS = ("copier.yml", "template", "hooks", "CHANGELOG.md", "README.md")
"""What a template release needs: the questions, the skeleton, the hooks and their docs."""


def snapshot(destination: Path, tag: str = "v1.0.0", source: Path = REPO_ROOT) -> Path:
    """Copy the template's files from `source` into a new git repository tagged `tag`."""
    destination.mkdir(parents=True)
    for name in TEMPLATE_PATHS:
        path = source / name
        if path.is_dir():
            shutil.copytree(path, destination / name, ignore=shutil.ignore_patterns("__pycache__"))
        elif path.exists():
            shutil.copy2(path, destination / name)
    git("init", "--quiet", "--initial-branch=main", cwd=destination)
    commit_all(destination, f"Template {tag}")
    git("tag", tag, cwd=destination)
    return destination


def commit_all(repository: Path, message: str) -> None:
    """Commit every change in the repository (used to build later template versions)."""
    git("add", "--all", cwd=repository)
    git("commit", "--quiet", "--allow-empty", "-m", message, cwd=repository)


def release(repository: Path, tag: str, message: str | None = None) -> None:
    """Commit the working tree of a template repository and tag it as a new version."""
    commit_all(repository, message or f"Template {tag}")
    git("tag", tag, cwd=repository)


def current_version(changelog: Path = REPO_ROOT / "CHANGELOG.md") -> str:
    """The newest version recorded in the changelog (headings read `## vX.Y.Z ...`)."""
    for line in changelog.read_text().splitlines():
        match = re.match(r"## (v\d+\.\d+\.\d+)\b", line)
        if match:
            return match.group(1)
    raise ValueError(f"{changelog} records no version heading `## vX.Y.Z`")
