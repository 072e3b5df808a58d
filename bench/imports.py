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
from functools import partial

from bench.counters import callgrind_totals
from bench.stats import NotMeasuredError, Report, Target
from bench.workspace import Workspace, alternate, service_modules, timed
from harness.commands import run

IMPORT_TARGET = Target("<=", 1.3)
"""DESIGN.md: the generated app's import at most 1.3x `import fastapi`."""
IMPORTTIME_LINE = re.compile(r"^import time:\s+(\d+) \|\s+(\d+) \| ( *)(\S+)$", re.MULTILINE)
"""A line of `-X importtime`: self and cumulative microseconds, the nesting, the module."""


def cumulative_ms(stderr: str, package: str) -> float:
    """Cumulative time of the top-level (unindented) imports of `package` and its submodules
    (package/__init__ and package.app are both top-level lines of `import package.app`)."""
    top_level = [
        int(cumulative)
        for _, cumulative, indent, module in IMPORTTIME_LINE.findall(stderr)
        if not indent and (module == package or module.startswith(f"{package}."))
    ]
    return sum(top_level) / 1000


def measure_imports(workspace: Workspace, report: Report) -> None:
    """Import time of the generated app, defaults and `database: postgres`, against fastapi's."""
    for database in ("none", "postgres"):
        _measure_service(workspace, report, database)


def _measure_service(workspace: Workspace, report: Report, database: str) -> None:
    options, env = workspace.options, workspace.env
    service = workspace.reference_service(database)
    package, core = service_modules(service)
    variant = "" if database == "none" else f" (database: {database})"
    python = str(service / ".venv" / "bin" / "python")
    app, fastapi = f"import {package}.app", "import fastapi"

    def importtime_ms(statement: str, module: str) -> float:
        stderr = run([python, "-X", "importtime", "-c", statement], cwd=service, env=env).stderr
        return cumulative_ms(stderr, module)

    def wall_ms(statement: str) -> float:
        return timed(lambda: run([python, "-c", statement], cwd=service, env=env)) * 1000

    samples = alternate(
        {
            "app": partial(wall_ms, app),
            "fastapi": partial(wall_ms, fastapi),
            "app, importtime": partial(importtime_ms, app, package),
            "fastapi, importtime": partial(importtime_ms, fastapi, "fastapi"),
        },
        options.repetitions,
        warmups=max(options.warmups, 1),  # the first import writes the .pyc files
    )
    report.add(
        "import",
        f'python -c "import {package}.app"{variant}, wall',
        "ms",
        samples["app"],
        samples["fastapi"],
        baseline_name='python -c "import fastapi"',
        target=IMPORT_TARGET,
    )
    report.add(
        "import",
        f"-X importtime cumulative, {package}.app{variant}",
        "ms",
        samples["app, importtime"],
        samples["fastapi, importtime"],
        baseline_name="fastapi, -X importtime cumulative",
        target=IMPORT_TARGET,
        note="start-up left out",
    )
    try:  # callgrind's counts of the same command agree to well under 1 %: one run each will do
        counts = {
            one: sum(callgrind_totals([python, "-c", one], cwd=service, env=env))
            for one in (app, fastapi)
        }
    except NotMeasuredError as missing:
        report.not_measured.append(f"import{variant}: instructions: {missing}")
    else:
        report.add(
            "import",
            f'python -c "import {package}.app"{variant}, instructions (callgrind)',
            "M",
            [counts[app] / 1e6],
            [counts[fastapi] / 1e6],
            baseline_name='python -c "import fastapi"',
            target=IMPORT_TARGET,
            note="user space, start-up included: the budget's steady figure on a busy machine",
        )
    stderr = run([python, "-X", "importtime", "-c", app], cwd=service, env=env).stderr
    report.add_note(
        f"Import of {package}.app{variant} by package (-X importtime self time)",
        _by_package(stderr, {core: "ours: core/", package: "ours: template/"}),
    )


def _by_package(stderr: str, ours: dict[str, str]) -> list[str]:
    """Self time summed per top-level package."""
    by_package: Counter[str] = Counter()
    for self_us, _, _, module in IMPORTTIME_LINE.findall(stderr):
        top = module.split(".")[0]
        name = "stdlib" if top in sys.stdlib_module_names or top.startswith("_") else top
        by_package[ours.get(name, name)] += int(self_us)
    total = sum(by_package.values()) or 1
    return [
        f"{total / 1000:.0f} ms of module bodies in all (including interpreter start-up's imports)",
        *(
            f"  {micro / 1000:7.1f} ms  {100 * micro / total:5.1f} %  {name}"
            for name, micro in by_package.most_common(12)
        ),
    ]
