"""The scratch area every section works in, built once per run from the working tree.

The core is built into a local file:// index and the template snapshotted into a tagged git
repository, exactly as the template's tests do (harness/), so the benchmarks measure what a user
gets from a release: `copier copy` from a tag, `uv lock`/`uv sync` against the private index.
"""

from __future__ import annotations

import itertools
import shutil
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar

import yaml

from harness.commands import find_python, run
from harness.core_index import publish_core
from harness.generate import copy
from harness.template_repo import current_version, snapshot

T = TypeVar("T")
SERVICE_PYTHON = "3.11"
"""The template's default python_version: the interpreter generated services are measured on."""


@dataclass(frozen=True)
class Options:
    """What the command line chose: how many repetitions, which sections, quick or full."""

    repetitions: int
    warmups: int
    load_rounds: int
    load_seconds: int
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

    def fresh(self, label: str, *, create: bool = False) -> Path:
        """A path no other run uses, for a new service or folder (`create`d empty)."""
        path = self.root / "runs" / f"{next(self._counter):03d}-{label}"
        if create:
            path.mkdir(parents=True)
        return path

    def reference_service(self, database: str = "none") -> Path:
        """One service generated with the defaults (and `database`) and `uv sync`ed, built on first
        use and shared by the sections that measure a service rather than its generation.
        `--service` replaces the default variant only."""
        if database == "none" and self.options.service is not None:
            return self.options.service.resolve()
        if database not in self._references:
            path = self.fresh(f"reference-{database}")
            answers = {**self.answers, "database": database}
            copy(self.template, path, answers, vcs_ref=self.tag, env=self.env)
            run(["uv", "sync", "--locked"], cwd=path, env=self.env)
            self._references[database] = path
        return self._references[database]

    def discard(self, path: Path) -> None:
        """Generated services go as soon as measured (a venv weighs hundreds of MB)."""
        if not self.options.keep:
            shutil.rmtree(path, ignore_errors=True)

    def cleanup(self) -> None:
        self.discard(self.root)


def timed(action: Callable[[], object]) -> float:
    """Wall time of one call, in seconds."""
    start = time.perf_counter()
    action()
    return time.perf_counter() - start


def alternate(
    actions: Mapping[str, Callable[[], T]], rounds: int, warmups: int = 0
) -> dict[str, list[T]]:
    """Each action's results, one per round, after `warmups` untimed rounds: every round runs
    each action once, in alternating order, so a machine that speeds up or slows down moves all
    alike and each round's results make a fair pair."""
    results: dict[str, list[T]] = {name: [] for name in actions}
    for index in range(warmups + rounds):
        for name in list(actions) if index % 2 == 0 else reversed(list(actions)):
            result = actions[name]()
            if index >= warmups:
                results[name].append(result)
    return results


def timed_command(
    args: list[str], *, cwd: Path | None = None, env: Mapping[str, str] | None = None
) -> Callable[[], float]:
    """The wall time of one run of an external command, through the harness (failures raise,
    with the output), as an action for alternate()."""
    return lambda: timed(lambda: run(list(args), cwd=cwd, env=env))


def service_modules(service: Path) -> tuple[str, str]:
    """The generated service's package name and the core's import name, from its answers file."""
    answers: dict[str, Any] = yaml.safe_load((service / ".copier-answers.yml").read_text())
    return str(answers["package_name"]), str(answers.get("core_module", "smplcore"))
