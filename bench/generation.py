"""Generating and updating services: `copier copy`, time to green and `copier update`.

Each figure times the real command line a developer types (the copier CLI with its tasks, `uv sync`,
`uv run pytest`), in a fresh folder every repetition, beside the tool's own floor timed in the same
round: `copier --version` for copier, and for time to green the floors of its three commands.
"""

from __future__ import annotations

import re
import shutil
import sys
import time
from collections.abc import Callable
from pathlib import Path

from bench.profiling import profile_command
from bench.stats import Figure, Report, Target
from bench.workspace import Workspace, alternate, timed, timed_command
from harness.commands import run
from harness.generate import copier_args, copy, update
from harness.template_repo import release, snapshot

COPIER_TARGETS = {"copier copy": Target("<=", 3.0), "copier update": Target("<=", 5.0)}
"""DESIGN.md: `copier copy` with its post-copy task, and `copier update` across one template
version, at most 3x and 5x `copier --version`."""
GREEN_TARGET = Target("<=", 5.0)
"""Time to green with a warm cache at most 5x the three commands' floors."""
ALL_OPTIONS = {"database": "postgres"}
"""Every option that adds files or dependencies switched on (the others only change values)."""
COPIER_VERSION = [sys.executable, "-m", "copier", "--version"]
"""The copier CLI's own start-up, run the way harness.generate runs copier."""


def _check_tasks_ran(path: Path, output: str) -> None:
    """The post-copy task never fails the copy, so a copy whose `uv lock` failed would look fast."""
    if not (path / "uv.lock").is_file() or not (path / ".git").is_dir():
        raise RuntimeError(f"the post-copy task did not lock and commit {path}; it said:\n{output}")


def _profile_copier(
    workspace: Workspace, report: Report, title: str, args: list[str], cwd: Path
) -> None:
    output = workspace.fresh("profile", create=True) / "copier.prof"
    lines = profile_command(["copier", *args], cwd=cwd, env=workspace.env, output=output)
    report.add_note(f"Profile: {title} (cProfile)", lines)


def _beside_copier(
    workspace: Workspace, report: Report, section: str, name: str, once: Callable[[], float]
) -> Figure:
    """The seconds `once` takes, in rounds alternating with `copier --version`."""
    options = workspace.options
    floor = timed_command(COPIER_VERSION)
    samples = alternate({"copier": once, "floor": floor}, options.repetitions, options.warmups)
    copier, base = samples["copier"], samples["floor"]
    target = COPIER_TARGETS[section]
    return report.add(
        section, name, "s", copier, base, baseline_name="copier --version", target=target
    )


def measure_copy(workspace: Workspace, report: Report) -> None:
    """`copier copy` from a tag, with its tasks, defaults and all options, against its floor."""
    options, env = workspace.options, workspace.env
    for label, extra in (("defaults", {}), ("all options", ALL_OPTIONS)):
        data = {**workspace.answers, **extra}

        def once(data: dict[str, str] = data) -> float:
            destination = workspace.fresh("copy")
            started = time.perf_counter()
            result = copy(workspace.template, destination, data, vcs_ref=workspace.tag, env=env)
            seconds = time.perf_counter() - started
            _check_tasks_ran(destination, result.stdout + result.stderr)
            workspace.discard(destination)
            return seconds

        figure = _beside_copier(workspace, report, "copier copy", f"{label}, with tasks", once)
        if options.should_profile(figure.missed()):
            args = ["copy", "--trust", "--defaults", "--quiet", "--vcs-ref", workspace.tag]
            args += [*copier_args(data), str(workspace.template), str(workspace.fresh("copy"))]
            _profile_copier(workspace, report, f"copier copy, {label}", args, workspace.root)


def measure_time_to_green(workspace: Workspace, report: Report) -> None:
    """Time to green: copy, `uv sync --locked`, `uv run pytest` (warm uv cache), against the three
    commands' floors.

    The floors (`copier --version`, a no-op `uv sync`, `uv run pytest --version`) run in the service
    just made green."""
    options, env = workspace.options, workspace.env

    def once() -> tuple[float, float, int]:
        destination = workspace.fresh("green")
        started = time.perf_counter()
        copy(workspace.template, destination, workspace.answers, vcs_ref=workspace.tag, env=env)
        run(["uv", "sync", "--locked"], cwd=destination, env=env)
        tests = run(["uv", "run", "pytest"], cwd=destination, env=env).stdout  # raises unless green
        seconds = time.perf_counter() - started
        _check_tasks_ran(destination, "")
        floors = (COPIER_VERSION, ["uv", "sync", "--locked"], ["uv", "run", "pytest", "--version"])
        floor = timed(lambda: [run(args, cwd=destination, env=env) for args in floors])
        workspace.discard(destination)
        return seconds, floor, int(re.findall(r"(\d+) passed", tests)[-1])

    # The warm-up fills the uv cache with everything the service locks.
    rounds = alternate({"green": once}, options.repetitions, max(options.warmups, 1))["green"]
    green, floors, counts = zip(*rounds, strict=True)
    report.add(
        "time to green (warm uv cache)",
        "copy + uv sync + uv run pytest",
        "s",
        green,
        floors,
        baseline_name="copier --version + a no-op uv sync + uv run pytest --version",
        target=GREEN_TARGET,
        note=f"{'/'.join(map(str, sorted(set(counts))))} tests passed",
    )


UPDATE_MARKER = "Added by the benchmark's template v1.1.0."
UPDATE_ARGS = ["update", "--trust", "--defaults", "--quiet", "--vcs-ref", "v1.1.0"]


def measure_update(workspace: Workspace, report: Report) -> None:
    """`copier update` across one template version, against `copier --version`.

    v1.0.0 -> v1.1.0 of a template whose only change is one line in a file, on fresh copies."""
    options = workspace.options
    template = snapshot(workspace.root / "update-template", tag="v1.0.0")
    readme = template / "template" / "README.md.jinja"
    readme.write_text(readme.read_text() + f"\n{UPDATE_MARKER}\n")
    release(template, "v1.1.0")
    generated = workspace.fresh("update-v1.0.0")
    result = copy(template, generated, workspace.answers, vcs_ref="v1.0.0", env=workspace.env)
    _check_tasks_ran(generated, result.stdout + result.stderr)

    def fresh_copy() -> Path:
        return Path(shutil.copytree(generated, workspace.fresh("update"), symlinks=True))

    def once() -> float:
        project = fresh_copy()
        seconds = timed(lambda: update(project, "--vcs-ref", "v1.1.0", env=workspace.env))
        if UPDATE_MARKER not in (project / "README.md").read_text():
            raise RuntimeError(f"`copier update` to v1.1.0 did not bring the change into {project}")
        workspace.discard(project)
        return seconds

    name = "v1.0.0 -> v1.1.0, one line changed"
    figure = _beside_copier(workspace, report, "copier update", name, once)
    if options.should_profile(figure.missed()):
        _profile_copier(workspace, report, "copier update", UPDATE_ARGS, fresh_copy())
