"""The scratch area every section works in, built once per run from the working tree.

The core is built into a local file:// index and the template snapshotted into a tagged git
repository, exactly as the template's tests do (harness/), so the benchmarks measure what a user
gets from a release: `copier copy` from a tag, `uv lock`/`uv sync` against the private index.
"""

from __future__ import annotations

import itertools
import shutil
import subprocess
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from harness.commands import find_python, run
from harness.core_index import publish_core
from harness.generate import copy
from harness.template_repo import current_version, snapshot

SERVICE_PYTHON = "3.11"
"""The template's default python_version: the interpreter generated services are measured on."""


@dataclass(frozen=True)
class Options:
    """What the command line chose: how many repetitions, which sections, quick or full."""

    repetitions: int
    warmups: int
    load_rounds: int
    load_seconds: int
    load_warmup_seconds: int
    connections: int
    profile: Literal["missed", "all", "none"]
    keep: bool
    service: Path | None = None
    """An existing service (generated and `uv sync`ed) for the import and load sections, to try a
    change in a service before making it in the template; None generates one from the template."""

    def should_profile(self, missed: bool) -> bool:
        """Profiles cost time: by default only where a budget is missed."""
        return self.profile == "all" or (self.profile == "missed" and missed)


@dataclass
class Workspace:
    """Paths and environment shared by the sections; `fresh()` hands out new empty folders."""

    root: Path
    options: Options
    template: Path = field(init=False)
    tag: str = field(init=False)
    index_url: str = field(init=False)
    env: dict[str, str] = field(init=False)
    _counter: itertools.count[int] = field(init=False, default_factory=itertools.count)
    _references: dict[str, Path] = field(init=False, default_factory=dict)

    def prepare(self) -> None:
        """Build the core index and the template snapshot (a few seconds; not measured)."""
        self.tag = current_version()
        self.index_url = publish_core(self.root / "core-index" / "simple", self.root / "core-index")
        self.template = snapshot(self.root / "template", tag=self.tag)
        python = find_python(SERVICE_PYTHON)
        if python is None:
            raise RuntimeError(
                f"Python {SERVICE_PYTHON} is needed to run generated services: install it (e.g. "
                f"`pyenv install {SERVICE_PYTHON}`) so that python{SERVICE_PYTHON} is on PATH."
            )
        self.env = {"UV_PYTHON": python}

    @property
    def answers(self) -> dict[str, str]:
        """Answers of a service with the defaults: only the core comes from the local index."""
        return {"core_index_url": self.index_url}

    def fresh(self, label: str) -> Path:
        """A path that does not exist yet, for a new service or cache."""
        return self.root / "runs" / f"{next(self._counter):03d}-{label}"

    def reference_service(self, database: str = "none") -> Path:
        """One service generated with the defaults (and `database`), installed with
        `uv sync --locked`.

        Built on first use and shared by the import and load sections, which measure a service
        rather than its generation. `--service` replaces the default variant only.
        """
        if database == "none" and self.options.service is not None:
            return self.options.service.resolve()
        if database not in self._references:
            path = self.fresh(f"reference-{database}")
            answers = {**self.answers, "database": database}
            copy(self.template, path, answers, vcs_ref=self.tag, env=self.env)
            run(["uv", "sync", "--locked"], cwd=path, env=self.env)
            self._references[database] = path
        return self._references[database]

    def cleanup(self) -> None:
        if not self.options.keep:
            shutil.rmtree(self.root, ignore_errors=True)


def timed(action: Callable[[], object]) -> float:
    """Wall time of one call, in seconds."""
    start = time.perf_counter()
    action()
    return time.perf_counter() - start


def repeat(action: Callable[[], object], repetitions: int, warmups: int = 0) -> list[float]:
    """Wall times of `repetitions` calls after `warmups` untimed ones (caches, .pyc files)."""
    for _ in range(warmups):
        action()
    return [timed(action) for _ in range(repetitions)]


def command(
    args: list[str], *, cwd: Path | None = None, env: Mapping[str, str] | None = None
) -> Callable[[], subprocess.CompletedProcess[str]]:
    """A timed unit: one external command run through the harness (failures raise, with output)."""
    return lambda: run(list(args), cwd=cwd, env=env)


def service_modules(service: Path) -> tuple[str, str]:
    """The generated service's package name and the core's import name, from its answers file."""
    answers: dict[str, Any] = yaml.safe_load((service / ".copier-answers.yml").read_text())
    return str(answers["package_name"]), str(answers.get("core_module", "smplcore"))
