"""What the `copier update` tests share: template versions, services, and the team's work.

The template's working tree is released as v1.0.0; later versions are built from it by scripted
changes (harness.template_repo), each the kind of change a real release makes:

- v1.1.0 (no migration): README's title rewritten, .gitignore gains a first line, dependabot.yml
  and the team-owned seed ruff.toml a last one, .env.example and .yamllint.yaml deleted,
  docs/runbook.md added, and a new question `log_format` (default "json") rendered into
  config/logging.toml.
- v2.0.0: the answer `owner_team` renamed `owning_team` (migration: rename-answer, before).
- v3.0.0: widgets/schemas.py moved to widgets/serialization.py, imports following (migration:
  move-path, after).

`TeamWork` makes the service team's edits, remembers every line the team wrote, and tells which of
them can no longer be found in the service: each scenario asserts that none is lost.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path

from harness import template_repo
from harness.commands import git
from harness.generate import copy
from harness.template_repo import commit_all, release, snapshot, template_file
from tests.services import service_files, uv_python

LATEST = "v3.0.0"
NEW_TITLE = "# {{ service_name }}: a smplkit product service"
LOG_FORMAT_QUESTION = """\
  type: str
  help: Format of the service's log lines.
  choices: [json, text]
  default: json"""


def prepend(path: Path, text: str) -> None:
    path.write_text(text + path.read_text())


def append(path: Path, text: str) -> None:
    path.write_text(path.read_text() + text)


def replace_line(path: Path, index: int, line: str) -> None:
    lines = path.read_text().splitlines(keepends=True)
    lines[index] = line + "\n"
    path.write_text("".join(lines))


def build_versions(destination: Path) -> Path:
    """A template repository with v1.0.0 (the working tree) and the later versions above."""
    repository = snapshot(destination, tag="v1.0.0")

    replace_line(template_file(repository, "README.md.jinja"), 0, NEW_TITLE)
    prepend(template_file(repository, ".gitignore"), "# Kept current by the service template.\n")
    append(template_file(repository, ".github/dependabot.yml"), "# Reviewed by the platform.\n")
    append(template_file(repository, "ruff.toml"), "# Seeded by template v1.1.0 and later.\n")
    template_repo.delete_path(repository, ".env.example.jinja")
    template_repo.delete_path(repository, ".yamllint.yaml")
    runbook = template_file(repository, "docs/runbook.md.jinja")
    runbook.parent.mkdir()
    runbook.write_text("# {{ service_name }} runbook\n\nThe template's first runbook entry.\n")
    template_repo.add_question(repository, "log_format", LOG_FORMAT_QUESTION)
    template_file(repository, "config/logging.toml.jinja").write_text(
        'format = "{{ log_format }}"\n'
    )
    release(repository, "v1.1.0")

    template_repo.rename_answer(repository, "owner_team", "owning_team", "v2.0.0")
    release(repository, "v2.0.0")

    widgets = "src/{{package_name}}/widgets"
    template_repo.move_path(
        repository, f"{widgets}/schemas.py.jinja", f"{widgets}/serialization.py.jinja", "v3.0.0"
    )
    release(repository, LATEST)
    return repository


def generate(template: Path, destination: Path, answers: dict[str, str]) -> Path:
    """`copier copy` of v1.0.0, tasks and all (git init, uv lock, first commit)."""
    copy(template, destination, answers, vcs_ref="v1.0.0", env=uv_python(answers))
    return destination


def clone_service(service: Path, destination: Path) -> Path:
    """A copy of a generated service, git history and all, for one scenario to change."""
    shutil.copytree(service, destination, symlinks=True)
    return destination


def status(service: Path) -> list[str]:
    """`git status --porcelain` lines, untracked files listed one by one."""
    return git("status", "--porcelain", "--untracked-files=all", cwd=service).splitlines()


def tree(service: Path) -> dict[str, bytes]:
    """Every file of the service, outside git's and the tools' folders, by relative path."""
    return {str(path.relative_to(service)): path.read_bytes() for path in service_files(service)}


@dataclass
class TeamWork:
    """The service team's edits, and every line the team wrote, to find again after an update."""

    service: Path
    lines: list[tuple[str, str]] = field(default_factory=list)
    """(file the team wrote it in, line)."""

    def _wrote(self, path: str, text: str) -> None:
        self.lines += [(path, line) for line in text.splitlines() if line.strip()]

    def append(self, path: str, text: str) -> None:
        append(self.service / path, text)
        self._wrote(path, text)

    def replace_line(self, path: str, index: int, line: str) -> None:
        replace_line(self.service / path, index, line)
        self._wrote(path, line)

    def create(self, path: str, text: str) -> None:
        file = self.service / path
        file.parent.mkdir(parents=True, exist_ok=True)
        file.write_text(text)
        self._wrote(path, text)

    def delete(self, path: str) -> None:
        (self.service / path).unlink()

    def commit(self, message: str = "The team's own work") -> None:
        commit_all(self.service, message)

    def missing(self) -> list[str]:
        """The team's lines found nowhere in the service: merged, in a conflict block, in a
        `.rej` file (as an added line) or in a file kept aside all count as found."""
        found: set[str] = set()
        for path, content in tree(self.service).items():
            for line in content.decode(errors="replace").splitlines():
                found.add(line.strip())
                if path.endswith(".rej") and line[:1] in "+- ":
                    found.add(line[1:].strip())
        return [f"{path}: {line}" for path, line in self.lines if line.strip() not in found]
