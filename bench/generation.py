"""Generating and updating services: `copier copy`, time to green and `copier update`.

Each figure times the real command line a developer types (the copier CLI with its tasks, `uv sync`,
`uv run pytest`), in a fresh folder every repetition, beside the tool's own floor timed in the same
run: `copier --version` for copier, a no-op `uv sync` and `uv run pytest --version` for the rest.
"""

from __future__ import annotations

import re
import shutil
import sys
from collections.abc import Callable, Mapping
from pathlib import Path

from bench.counters import instructions_of, perf_works
from bench.profiling import profile_command
from bench.stats import Figure, Report, Summary, Target
from bench.workspace import Workspace, command, repeat, timed
from harness.commands import run
from harness.generate import copier_args, copy, update
from harness.template_repo import release, snapshot

COPY_TARGET = Target("<=", 3.0, on="ratio")
"""DESIGN.md: `copier copy` with its post-copy task at most 3x `copier --version`."""
GREEN_TARGET = Target("<=", 5.0, on="ratio")
"""Time to green with a warm cache at most 5x the three commands' floors."""
UPDATE_TARGET = Target("<=", 5.0, on="ratio")
"""`copier update` across one template version at most 5x `copier --version`."""
ALL_OPTIONS = {"database": "postgres"}
"""Every option that adds files or dependencies switched on (the others only change values)."""

COPIER_VERSION = [sys.executable, "-m", "copier", "--version"]
"""The copier CLI's own start-up, run the way harness.generate runs copier."""


def copier_floor(workspace: Workspace) -> Summary:
    options = workspace.options
    return Summary.of(repeat(command(COPIER_VERSION), options.repetitions, warmups=1))


def _discard(path: Path, workspace: Workspace) -> None:
    """Generated services are deleted as soon as measured: cold-cache venvs weigh hundreds of MB."""
    if not workspace.options.keep:
        shutil.rmtree(path, ignore_errors=True)


def _check_tasks_ran(path: Path, output: str) -> None:
    """The post-copy task never fails the copy, so a copy whose `uv lock` failed would look fast."""
    if not (path / "uv.lock").is_file() or not (path / ".git").is_dir():
        raise RuntimeError(f"the post-copy task did not lock and commit {path}; it said:\n{output}")


def measure_copy(workspace: Workspace, report: Report) -> None:
    """`copier copy` from the tag, defaults and all options, with tasks and with --skip-tasks."""
    options = workspace.options
    floor = copier_floor(workspace)
    variants: list[tuple[str, Mapping[str, str]]] = [("defaults", {}), ("all options", ALL_OPTIONS)]
    for label, extra in variants:
        for skip_tasks in (False, True):
            data = {**workspace.answers, **extra}

            def once(data: Mapping[str, str] = data, skip_tasks: bool = skip_tasks) -> None:
                destination = workspace.fresh("copy")
                result = copy(
                    workspace.template,
                    destination,
                    data,
                    vcs_ref=workspace.tag,
                    skip_tasks=skip_tasks,
                    env=workspace.env,
                )
                if not skip_tasks:
                    _check_tasks_ran(destination, result.stdout + result.stderr)
                _discard(destination, workspace)

            samples = repeat(once, options.repetitions, warmups=options.warmups)
            figure = Figure(
                section="copier copy",
                name=f"{label}, {'--skip-tasks' if skip_tasks else 'with tasks'}",
                unit="s",
                value=Summary.of(samples),
                baseline_name="copier --version",
                baseline=floor,
                target=None if skip_tasks else COPY_TARGET,
                note="" if skip_tasks else "task: git init, uv lock, git commit",
            )
            report.figures.append(figure)
            if skip_tasks:
                _copy_instructions(workspace, report, label, data)
            if options.should_profile(figure.missed()):
                _profile_copy(workspace, report, label, data, skip_tasks)
    _measure_lock(workspace, report)


INSTRUCTION_RUNS = 3
"""Instruction counts vary by well under 1 %: three runs show it."""
COPIER_NEEDS_PERF = (
    "`perf stat` does not work here, and callgrind would take minutes per copier command "
    "(copier and the git processes it starts)"
)


def _copier_instructions(
    workspace: Workspace, prepare: Callable[[], tuple[list[str], Path]]
) -> Summary:
    """Billions of user-space instructions of a copier command, child processes included."""
    counts = []
    for _ in range(INSTRUCTION_RUNS):
        args, cwd = prepare()
        command_line = [sys.executable, "-m", "copier", *args]
        counts.append(instructions_of(command_line, cwd=cwd, env=workspace.env) / 1e9)
    return Summary.of(counts)


def _copier_version_instructions(workspace: Workspace) -> Summary:
    return _copier_instructions(workspace, lambda: (["--version"], workspace.root))


def _copy_instructions(
    workspace: Workspace, report: Report, label: str, data: Mapping[str, str]
) -> None:
    """The rendering's cost in instructions, which the load on a shared machine does not move:
    the figure to compare when changing copier.yml or the template's files."""
    if not perf_works():
        report.not_measured.append(f"copier copy, {label}: instructions: {COPIER_NEEDS_PERF}")
        return

    def prepare() -> tuple[list[str], Path]:
        args = ["copy", "--trust", "--defaults", "--quiet", "--skip-tasks"]
        args += ["--vcs-ref", workspace.tag, *copier_args(data)]
        return [*args, str(workspace.template), str(workspace.fresh("copy"))], workspace.root

    report.figures.append(
        Figure(
            section="copier copy",
            name=f"{label}, --skip-tasks, instructions (perf)",
            unit="G",
            value=_copier_instructions(workspace, prepare),
            baseline_name="copier --version",
            baseline=_copier_version_instructions(workspace),
        )
    )


def _measure_lock(workspace: Workspace, report: Report) -> None:
    """The post-copy task's `uv lock` alone, in a service rendered with --skip-tasks.

    It is the bulk of the task's cost and belongs to uv, not to the template: the rows tell how
    much of a copy with tasks is left to the template's own rendering, and (with --offline, from
    the same warm cache) how much of the lock is the network round trips to the indexes.
    """
    options = workspace.options
    rendered = workspace.fresh("lock")
    copy(workspace.template, rendered, workspace.answers, vcs_ref=workspace.tag, skip_tasks=True)
    floor = Summary.of(repeat(command(["uv", "--version"]), options.repetitions, warmups=1))

    def lock(*extra: str) -> Summary:
        def once() -> None:
            (rendered / "uv.lock").unlink(missing_ok=True)
            run(["uv", "lock", "--quiet", *extra], cwd=rendered, env=workspace.env)

        return Summary.of(repeat(once, options.repetitions, warmups=1))

    offline = lock("--offline")
    report.figures += [
        Figure(
            section="copier copy",
            name="its task's `uv lock` alone (defaults, warm cache)",
            unit="s",
            value=lock(),
            baseline_name="uv lock --offline",
            baseline=offline,
            note="the ratio is what the round trips to the indexes cost",
        ),
        Figure(
            section="copier copy",
            name="its task's `uv lock --offline` alone (defaults, warm cache)",
            unit="s",
            value=offline,
            baseline_name="uv --version",
            baseline=floor,
        ),
    ]
    _discard(rendered, workspace)


def _profile_copy(
    workspace: Workspace, report: Report, label: str, data: Mapping[str, str], skip_tasks: bool
) -> None:
    destination = workspace.fresh("copy-profile")
    args = ["copy", "--trust", "--defaults", "--quiet", "--vcs-ref", workspace.tag]
    args += ["--skip-tasks"] if skip_tasks else []
    args += [*copier_args(data), str(workspace.template), str(destination)]
    output = workspace.fresh("copy-profile") / "copier-copy.prof"
    lines = profile_command(["copier", *args], cwd=workspace.root, env=workspace.env, output=output)
    tasks = "--skip-tasks" if skip_tasks else "with tasks"
    report.add_note(f"Profile: copier copy, {label}, {tasks} (cProfile)", lines)
    _discard(destination, workspace)


PASSED = re.compile(r"(\d+) passed")
AGAIN = "pytest, run again (not in the total)"
"""A second run of the suite: what is left once the first has written the .pyc files."""


def _test_count(pytest_output: str) -> int:
    """The number of passed tests on pytest's closing line; the suite must be all green."""
    closing = pytest_output.strip().splitlines()[-1] if pytest_output.strip() else ""
    match = PASSED.search(closing)
    if match is None or "failed" in closing or "error" in closing:
        raise RuntimeError(f"the service's test suite is not green:\n{pytest_output[-3000:]}")
    return int(match.group(1))


def measure_time_to_green(workspace: Workspace, report: Report) -> None:
    """copy -> `uv sync --locked` -> `uv run pytest`, with a warm uv cache and with a fresh one."""
    options = workspace.options
    for cache in ("warm", "cold"):
        names = ("copy", "uv sync", "pytest", "total", AGAIN)
        stages: dict[str, list[float]] = {name: [] for name in names}
        floors: dict[str, list[float]] = {name: [] for name in names}
        counts: set[int] = set()
        runs = options.repetitions + (options.warmups if cache == "warm" else 0)
        for index in range(runs):
            env = dict(workspace.env)
            if cache == "cold":
                env["UV_CACHE_DIR"] = str(workspace.fresh("uv-cache"))
            destination = workspace.fresh(f"green-{cache}")
            times, count = _green_once(workspace, destination, env)
            floor = _green_floor(destination, env)
            _discard(destination, workspace)
            if cache == "cold":
                _discard(Path(env["UV_CACHE_DIR"]), workspace)
            if index < runs - options.repetitions:
                continue  # warm-up: fills the warm cache with everything the service locks
            counts.add(count)
            for stage, seconds in times.items():
                stages[stage].append(seconds)
            for stage, seconds in floor.items():
                floors[stage].append(seconds)
        tests = "/".join(str(count) for count in sorted(counts))
        floor_names = {
            "copy": "copier --version",
            "uv sync": "uv sync, already in sync",
            "pytest": "uv run pytest --version",
            "total": "the three floors in a row",
            AGAIN: "uv run pytest --version",
        }
        for stage in ("total", "copy", "uv sync", "pytest", AGAIN):
            if cache == "cold" and stage in ("copy", "pytest", AGAIN):
                continue  # only the sync (and the copy's lock) download; the total shows them
            report.figures.append(
                Figure(
                    section=f"time to green ({cache} uv cache)",
                    name="copy + uv sync + uv run pytest" if stage == "total" else stage,
                    unit="s",
                    value=Summary.of(stages[stage]),
                    baseline_name=floor_names[stage],
                    baseline=Summary.of(floors[stage]),
                    target=GREEN_TARGET if stage == "total" and cache == "warm" else None,
                    note=f"{tests} tests passed" if stage in ("total", "pytest") else "",
                )
            )


def _green_once(
    workspace: Workspace, destination: Path, env: Mapping[str, str]
) -> tuple[dict[str, float], int]:
    """One run from nothing to a passing test suite; stage times and the number of tests."""
    times: dict[str, float] = {}
    times["copy"] = timed(
        lambda: copy(
            workspace.template, destination, workspace.answers, vcs_ref=workspace.tag, env=env
        )
    )
    _check_tasks_ran(destination, "")
    times["uv sync"] = timed(command(["uv", "sync", "--locked"], cwd=destination, env=env))
    outputs: list[str] = []
    times["pytest"] = timed(
        lambda: outputs.append(run(["uv", "run", "pytest"], cwd=destination, env=env).stdout)
    )
    times["total"] = sum(times.values())
    times[AGAIN] = timed(command(["uv", "run", "pytest"], cwd=destination, env=env))
    return times, _test_count(outputs[0])


def _green_floor(destination: Path, env: Mapping[str, str]) -> dict[str, float]:
    """The tools' own cost of each stage, in the service just made green."""
    floor = {
        "copy": timed(command(COPIER_VERSION, env=env)),
        "uv sync": timed(command(["uv", "sync", "--locked"], cwd=destination, env=env)),
        "pytest": timed(command(["uv", "run", "pytest", "--version"], cwd=destination, env=env)),
    }
    floor["total"] = sum(floor.values())
    floor[AGAIN] = floor["pytest"]
    return floor


UPDATE_MARKER = "Added by the benchmark's template v1.1.0."


def measure_update(workspace: Workspace, report: Report) -> None:
    """`copier update` v1.0.0 -> v1.1.0 (one line added to a template file), on fresh copies."""
    options = workspace.options
    template = snapshot(workspace.root / "update-template", tag="v1.0.0")
    readme = template / "template" / "README.md.jinja"
    readme.write_text(readme.read_text() + f"\n{UPDATE_MARKER}\n")
    release(template, "v1.1.0")
    generated = workspace.fresh("update-v1.0.0")
    result = copy(template, generated, workspace.answers, vcs_ref="v1.0.0", env=workspace.env)
    _check_tasks_ran(generated, result.stdout + result.stderr)

    def once() -> None:
        project = workspace.fresh("update")
        shutil.copytree(generated, project, symlinks=True)
        seconds = timed(lambda: update(project, "--vcs-ref", "v1.1.0", env=workspace.env))
        if UPDATE_MARKER not in (project / "README.md").read_text():
            raise RuntimeError(f"`copier update` to v1.1.0 did not bring the change into {project}")
        _discard(project, workspace)
        samples.append(seconds)

    samples: list[float] = []
    for _ in range(options.warmups):
        once()
    samples.clear()
    for _ in range(options.repetitions):
        once()
    figure = Figure(
        section="copier update",
        name="v1.0.0 -> v1.1.0, one line changed",
        unit="s",
        value=Summary.of(samples),
        baseline_name="copier --version",
        baseline=copier_floor(workspace),
        target=UPDATE_TARGET,
    )
    report.figures.append(figure)
    if not perf_works():
        report.not_measured.append(f"copier update: instructions: {COPIER_NEEDS_PERF}")
    else:

        def prepare() -> tuple[list[str], Path]:
            project = workspace.fresh("update")
            shutil.copytree(generated, project, symlinks=True)
            return ["update", "--trust", "--defaults", "--quiet", "--vcs-ref", "v1.1.0"], project

        report.figures.append(
            Figure(
                section="copier update",
                name="v1.0.0 -> v1.1.0, instructions (perf)",
                unit="G",
                value=_copier_instructions(workspace, prepare),
                baseline_name="copier --version",
                baseline=_copier_version_instructions(workspace),
                note="git's included",
            )
        )
    if options.should_profile(figure.missed()):
        project = workspace.fresh("update-profile")
        shutil.copytree(generated, project, symlinks=True)
        args = ["update", "--trust", "--defaults", "--quiet", "--vcs-ref", "v1.1.0"]
        output = workspace.fresh("update-profile") / "copier-update.prof"
        lines = profile_command(["copier", *args], cwd=project, env=workspace.env, output=output)
        report.add_note("Profile: copier update (cProfile)", lines)
        _discard(project, workspace)
