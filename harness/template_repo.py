"""Snapshots of this template as tagged git repositories, the way users consume it.

Users run `copier copy` against a released tag. Tests and benchmarks do the same against a snapshot
of the working tree, so uncommitted changes are tested and the developer's checkout is left alone.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

from harness.commands import REPO_ROOT, git

TEMPLATE_PATHS = (
    "copier.yml",
    "template",
    "workspace",
    "includes",
    "hooks",
    "CHANGELOG.md",
    "README.md",
)
"""What a template release needs: the questions, the skeletons and the parts they share, the hooks
and their docs."""


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
    """Commit every change in the repository (a template version, a service's work); the hooks a
    generated service installs do not run on these commits."""
    git("add", "--all", cwd=repository)
    git("commit", "--quiet", "--no-verify", "--allow-empty", "-m", message, cwd=repository)


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


# Later versions, built by scripted changes to a snapshot: the update tests (and benchmarks) need
# template releases after the current one. Each function changes the working tree of a template
# repository; `release()` then commits and tags it. Paths are the template's own (under template/,
# Jinja names and all); `migration_path()` gives the form `_migrations` arguments take.

MIGRATE = "{{ _copier_conf.src_path }}/hooks/migrations/migrate.py"
LOSS_GUARD_MARKER = "  # The loss guard"
"""The comment above the loss guard in copier.yml: version-gated steps are inserted before it."""


def template_file(repository: Path, path: str) -> Path:
    return repository / "template" / path


def migration_path(path: str) -> str:
    """A template path as the service has it, for a migration's arguments (rendered by Copier)."""
    return path.removesuffix(".jinja").replace("{{package_name}}", "{{ package_name }}")


def add_migration(repository: Path, version: str, stage: str, *args: str) -> None:
    """Register `migrate.py ARGS` for updates that cross `version`, in `stage` (before/after)."""
    config = repository / "copier.yml"
    text = config.read_text()
    command = ", ".join(f'"{arg}"' for arg in ["{{ _copier_python }}", MIGRATE, *args])
    entry = (
        f"  - version: {version}\n"
        f"    when: \"{{{{ _stage == '{stage}' }}}}\"\n"
        f"    command: [{command}]\n"
    )
    if LOSS_GUARD_MARKER not in text:
        raise ValueError(f"{config} has no loss guard comment ({LOSS_GUARD_MARKER.strip()!r})")
    config.write_text(text.replace(LOSS_GUARD_MARKER, entry + LOSS_GUARD_MARKER, 1))


def rename_answer(repository: Path, old: str, new: str, version: str) -> None:
    """Rename a question everywhere it is used, with the migration that carries its answer."""
    pattern = re.compile(rf"\b{re.escape(old)}\b")
    for path in [repository / "copier.yml", *sorted((repository / "template").rglob("*"))]:
        if path.is_file():
            text = path.read_text()
            if pattern.search(text):
                path.write_text(pattern.sub(new, text))
    add_migration(repository, version, "before", "rename-answer", old, new)


def move_path(repository: Path, source: str, target: str, version: str) -> None:
    """Move a template file (Python modules: their imports follow), with its migration."""
    git("mv", f"template/{source}", f"template/{target}", cwd=repository)
    old_module, new_module = (Path(path.removesuffix(".jinja")).stem for path in (source, target))
    if source.endswith(".py.jinja") and old_module != new_module:
        pattern = re.compile(rf"(?<=[./]){re.escape(old_module)}(?=( import|\.py\b))")
        for path in sorted((repository / "template").rglob("*.jinja")):
            text = path.read_text()
            if pattern.search(text):
                path.write_text(pattern.sub(new_module, text))
    add_migration(
        repository, version, "after", "move-path", migration_path(source), migration_path(target)
    )


def delete_path(repository: Path, path: str) -> None:
    git("rm", "--quiet", "-r", f"template/{path}", cwd=repository)


def add_question(repository: Path, name: str, definition: str) -> None:
    """Add a question (its YAML body, indented by two spaces) before the template settings."""
    config = repository / "copier.yml"
    text = config.read_text()
    marker = "# Template settings."
    config.write_text(text.replace(marker, f"{name}:\n{definition}\n{marker}", 1))
