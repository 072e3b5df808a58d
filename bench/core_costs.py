"""What the core, and a FastAPI dependency, cost per request: instructions, in-process.

The load section's figures include a server, a network stack and a machine whose speed drifts;
this section takes all three away. bench/asgi_driver.py sends GET requests to bare_app through
ASGI calls, and `perf stat` counts the user-space instructions of two runs that differ only in
the number of requests. The difference, per request, stays within about 1 % from run to run, so
a change to the core that saves 2 % shows here when no timing could show it.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from bench.bare_app import (
    MINIMAL_LAYER_VARIABLE,
    PAYLOADS_VARIABLE,
    ROUTE_DEPENDENCY_VARIABLE,
    WITH_CORE_VARIABLE,
)
from bench.counters import NO_COUNTER, instruction_counter, instructions_of
from bench.load import SERVICE_ENVIRONMENT
from bench.stats import Figure, NotMeasuredError, Report, Summary
from bench.workspace import Workspace, service_modules

BENCH_DIR = Path(__file__).resolve().parent
FEW, MANY = 500, 5500
"""Requests in the two runs whose difference is measured."""
CALLGRIND_FEW, CALLGRIND_MANY = 200, 1200
"""The same under callgrind, which runs fifty times slower and whose counts of one command vary by
under 0.1 %: fewer requests and one repetition suffice."""
PAYLOADS = {
    "collection": "/v1/widgets",
    "one": {"data": {"type": "widgets", "id": "w-1", "attributes": {"name": "widget 01"}}},
    "page": {"data": []},
    "created": {"data": {"type": "widgets", "id": "w-2", "attributes": {"name": "bench"}}},
}


def measure_core_costs(workspace: Workspace, report: Report) -> None:
    """Instructions per in-process GET for each variant, beside bare FastAPI's."""
    counter = instruction_counter()
    if counter is None:
        raise NotMeasuredError(NO_COUNTER)
    few, many = (FEW, MANY) if counter == "perf" else (CALLGRIND_FEW, CALLGRIND_MANY)
    service = workspace.reference_service()
    package, core = service_modules(service)
    folder = workspace.fresh("core-costs")
    folder.mkdir(parents=True)
    for name in ("bare_app.py", "asgi_driver.py"):
        shutil.copy2(BENCH_DIR / name, folder / name)
    (folder / "payloads.json").write_text(json.dumps(PAYLOADS))
    python = str(service / ".venv" / "bin" / "python")
    base_env = {
        **workspace.env,
        **SERVICE_ENVIRONMENT,
        PAYLOADS_VARIABLE: str(folder / "payloads.json"),
    }
    modules = f"{package}:{core}"
    variants = {
        "bare FastAPI + one dependency that does nothing": {ROUTE_DEPENDENCY_VARIABLE: "noop"},
        "minimal request-logging layer (request id, request line: the floor)": {
            MINIMAL_LAYER_VARIABLE: "1"
        },
        "core stack as a service runs it (install_core as app.py calls it, the route a "
        "feature_route)": {WITH_CORE_VARIABLE: modules},
    }

    def per_request(extra: dict[str, str]) -> float:
        env = {**base_env, **extra}

        def count(requests: int) -> int:
            args = [python, "asgi_driver.py", modules, str(requests)]
            return instructions_of(args, cwd=folder, env=env)

        return (count(many) - count(few)) / (many - few) / 1000

    repetitions = max(workspace.options.repetitions, 1) if counter == "perf" else 1
    per_request({})  # warm-up: the first runs write the byte-code caches
    bare = Summary.of([per_request({}) for _ in range(repetitions)])
    for name, extra in variants.items():
        report.figures.append(
            Figure(
                section="core-costs",
                name=f"in-process GET, instructions per request: {name}",
                unit="k",
                value=Summary.of([per_request(extra) for _ in range(repetitions)]),
                baseline_name="bare FastAPI, same handler",
                baseline=bare,
                note="ASGI calls, no server: the application's own cost",
            )
        )
