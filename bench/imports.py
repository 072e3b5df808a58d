"""Import time of the generated app, beside `import fastapi` (the floor every FastAPI app pays).

Import time is start-up time: every container start, every `uv run pytest`, every CLI command of the
service pays it. It is measured in the service's own venv, after a warm-up that writes the .pyc
files, as the wall time of `python -c "import PKG.app"` and as `-X importtime`'s cumulative figure,
whose per-module lines also say which packages the time goes to.
"""

from __future__ import annotations

import re
import sys
from collections import Counter
from dataclasses import dataclass

from bench.counters import NO_COUNTER, instruction_counter, instructions_of
from bench.stats import Figure, Report, Summary, Target
from bench.workspace import Workspace, command, service_modules, timed
from harness.commands import run

IMPORT_TARGET = Target("<=", 1.3, on="ratio")
"""DESIGN.md: the generated app's import at most 1.3x `import fastapi`."""
IMPORTTIME_LINE = re.compile(r"^import time:\s+(\d+) \|\s+(\d+) \| ( *)(\S+)$")


@dataclass(frozen=True)
class ImportLine:
    self_us: int
    cumulative_us: int
    depth: int
    module: str


def parse_importtime(stderr: str) -> list[ImportLine]:
    """The lines of `-X importtime`, with their nesting depth (0 for what the program imported)."""
    lines = []
    for text in stderr.splitlines():
        match = IMPORTTIME_LINE.match(text)
        if match:
            self_us, cumulative_us, indent, module = match.groups()
            lines.append(ImportLine(int(self_us), int(cumulative_us), len(indent) // 2, module))
    return lines


def cumulative_ms(lines: list[ImportLine], package: str) -> float:
    """Cumulative time of the top-level imports of `package` and its submodules (package/__init__
    and package.app are both top-level lines of `import package.app`)."""
    top = min((line.depth for line in lines), default=0)
    return (
        sum(
            line.cumulative_us
            for line in lines
            if line.depth == top
            and (line.module == package or line.module.startswith(f"{package}."))
        )
        / 1000
    )


def measure_imports(workspace: Workspace, report: Report) -> None:
    """The default service, then the `database: postgres` variant beside it."""
    for database in ("none", "postgres"):
        _measure_service(workspace, report, database)


def _measure_service(workspace: Workspace, report: Report, database: str) -> None:
    options = workspace.options
    service = workspace.reference_service(database)
    package, core = service_modules(service)
    variant = "" if database == "none" else f" (database: {database})"
    python = str(service / ".venv" / "bin" / "python")
    env = workspace.env
    statements = {"app": f"import {package}.app", "fastapi": "import fastapi", "bare": "pass"}
    wall: dict[str, list[float]] = {name: [] for name in statements}
    cumulative: dict[str, list[float]] = {"app": [], "fastapi": []}
    breakdown: list[ImportLine] = []
    warmups = max(options.warmups, 1)  # the first import writes the .pyc files
    for index in range(warmups + options.repetitions):
        measured = index >= warmups
        for name, statement in statements.items():  # interleaved: noise hits all three alike
            seconds = timed(command([python, "-c", statement], cwd=service, env=env))
            if measured:
                wall[name].append(seconds * 1000)
        for name in ("app", "fastapi"):
            stderr = run(
                [python, "-X", "importtime", "-c", statements[name]], cwd=service, env=env
            ).stderr
            lines = parse_importtime(stderr)
            if measured:
                cumulative[name].append(
                    cumulative_ms(lines, package if name == "app" else "fastapi")
                )
                if name == "app":
                    breakdown = lines
    startup = Summary.of(wall["bare"]).median
    report.figures += [
        Figure(
            section="import",
            name=f'python -c "import {package}.app"{variant}, wall',
            unit="ms",
            value=Summary.of(wall["app"]),
            baseline_name='python -c "import fastapi"',
            baseline=Summary.of(wall["fastapi"]),
            target=IMPORT_TARGET,
            note=f"interpreter start-up alone {startup:.0f} ms",
        ),
        Figure(
            section="import",
            name=f"-X importtime cumulative, {package}.app{variant}",
            unit="ms",
            value=Summary.of(cumulative["app"]),
            baseline_name="fastapi, -X importtime cumulative",
            baseline=Summary.of(cumulative["fastapi"]),
            target=IMPORT_TARGET,
            note="start-up left out",
        ),
    ]
    counter = instruction_counter()
    if counter is None:
        report.not_measured.append(f"import{variant}: instructions: {NO_COUNTER}")
    else:
        # callgrind's counts of the same command agree to well under 1 %; one run each will do.
        runs = options.repetitions if counter == "perf" else 1
        instructions = {
            name: Summary.of(
                [
                    instructions_of([python, "-c", statements[name]], cwd=service, env=env) / 1e6
                    for _ in range(runs)
                ]
            )
            for name in ("app", "fastapi")
        }
        report.figures.append(
            Figure(
                section="import",
                name=f'python -c "import {package}.app"{variant}, instructions ({counter})',
                unit="M",
                value=instructions["app"],
                baseline_name='python -c "import fastapi"',
                baseline=instructions["fastapi"],
                target=IMPORT_TARGET,
                note="user space, start-up included: the budget's steady figure on a busy machine",
            )
        )
    ours = {core: "ours: core/", package: "ours: template/"}
    report.add_note(
        f"Import of {package}.app{variant} by package (-X importtime self time)",
        _by_package(breakdown, ours),
    )


def _by_package(lines: list[ImportLine], ours: dict[str, str]) -> list[str]:
    """Self time summed per top-level package, and the slowest single modules."""
    by_package: Counter[str] = Counter()
    for line in lines:
        top = line.module.split(".")[0]
        name = "stdlib" if top in sys.stdlib_module_names or top.startswith("_") else top
        by_package[ours.get(name, name)] += line.self_us
    total = sum(by_package.values()) or 1
    out = [
        f"{total / 1000:.0f} ms of module bodies in all (including interpreter start-up's imports)"
    ]
    out += [
        f"  {micro / 1000:7.1f} ms  {100 * micro / total:5.1f} %  {name}"
        for name, micro in by_package.most_common(12)
    ]
    out.append("slowest modules (self time):")
    out += [
        f"  {line.self_us / 1000:7.1f} ms  {line.module}"
        for line in sorted(lines, key=lambda line: line.self_us, reverse=True)[:10]
    ]
    return out
