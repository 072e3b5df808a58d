"""Generated workspaces (the template's `layout: workspace`): generating one, and running its make
targets the way a team does."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from subprocess import CompletedProcess
from typing import Any

import yaml

from harness.commands import git, run
from harness.generate import copy

WORKSPACE_NAME = "acme-services"
COPIER = "copier"
"""How the workspace's Makefile runs Copier here: the locked one, on the tools' PATH (its default,
`uvx --from copier==...`, would fetch it)."""


@dataclass
class Workspace:
    """A folder produced by `copier copy --data layout=workspace`, a git repository."""

    path: Path

    def make(
        self, *arguments: str, env: Mapping[str, str] | None = None, check: bool = True
    ) -> CompletedProcess[str]:
        """`make ARGUMENTS` at the root (targets and VAR=value alike)."""
        return run(
            ["make", "--no-print-directory", *arguments, f"COPIER={COPIER}"],
            cwd=self.path,
            env=env,
            check=check,
            timeout=900,
        )

    def answers(self, folder: str = ".") -> dict[str, Any]:
        """The answers recorded in a folder of the workspace (the root by default)."""
        answers: dict[str, Any] = yaml.safe_load(
            (self.path / folder / ".copier-answers.yml").read_text()
        )
        return answers

    def commit(self, message: str) -> None:
        git("add", "--all", cwd=self.path)
        git("commit", "--quiet", "--no-verify", "-m", message, cwd=self.path)

    def clone(self, destination: Path) -> Workspace:
        """A copy for one test to change: its committed state, without the environments."""
        git("clone", "--quiet", str(self.path), str(destination), cwd=self.path.parent)
        return Workspace(destination)


def generate_workspace(
    template: Path,
    destination: Path,
    answers: Mapping[str, str],
    *,
    vcs_ref: str | None = None,
    env: Mapping[str, str] | None = None,
) -> Workspace:
    """`copier copy` of the workspace form, tasks and all (git init, `uv lock`, first commit)."""
    data = {"service_name": WORKSPACE_NAME, **answers, "layout": "workspace"}
    copy(template, destination, data, vcs_ref=vcs_ref, env=env)
    return Workspace(destination)
