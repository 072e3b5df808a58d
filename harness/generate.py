"""Generating services with the real `copier` command."""

from __future__ import annotations

import sys
from collections.abc import Mapping
from pathlib import Path
from subprocess import CompletedProcess

from harness.commands import run

SERVICE_NAME = "orders"
"""The service name `copy` answers unless told otherwise: the template defaults it to the
destination folder's name, and the tests' folders are named for what they test."""


def copier_args(data: Mapping[str, str]) -> list[str]:
    """`--data key=value` pairs, in a stable order."""
    return [arg for key, value in sorted(data.items()) for arg in ("--data", f"{key}={value}")]


def copy(  # noqa: PLR0913 - mirrors the copier options the callers need
    template: Path,
    destination: Path,
    data: Mapping[str, str],
    *,
    vcs_ref: str | None = None,
    skip_tasks: bool = False,
    check: bool = True,
    env: Mapping[str, str] | None = None,
) -> CompletedProcess[str]:
    """`copier copy --trust --defaults` with these answers (the template's tasks need --trust), the
    service named SERVICE_NAME unless they name it."""
    args: list[str] = [sys.executable, "-m", "copier", "copy", "--trust", "--defaults", "--quiet"]
    if vcs_ref:
        args += ["--vcs-ref", vcs_ref]
    if skip_tasks:
        args.append("--skip-tasks")
    args += copier_args({"service_name": SERVICE_NAME, **data})
    return run([*args, str(template), str(destination)], check=check, env=env)


def update(
    project: Path,
    *extra: str,
    data: Mapping[str, str] | None = None,
    check: bool = True,
    env: Mapping[str, str] | None = None,
) -> CompletedProcess[str]:
    """`copier update --trust --defaults` in a generated service (a git repository)."""
    args = [sys.executable, "-m", "copier", "update", "--trust", "--defaults", "--quiet", *extra]
    args += copier_args(data or {})
    return run(args, cwd=project, check=check, env=env)
