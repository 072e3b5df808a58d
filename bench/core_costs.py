"""What each server of the load test costs per request, in instructions, in-process.

The load section's figures include a server, a network stack and a machine whose speed drifts;
this section takes all three away. bench/asgi_driver.py starts each server's app in the service's
interpreter and sends it each endpoint's requests through ASGI calls, and callgrind counts the
instructions of each endpoint's requests apart (one run per server, its start-up left out). The
counts of one command vary by well under 1 %, so a change that saves 2 % shows here when no
timing on a shared machine could show it. The servers and their ratios are the load section's:
the generated service (E) against the hand-written idiomatic API (B, its anchor) and bare FastAPI
(A, the limit), the core on A's handlers (C) and the minimal request-logging layer (D) against A.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from bench.bare_app import PAYLOADS_VARIABLE
from bench.counters import callgrind_segments
from bench.load import COMPARISONS, ENDPOINTS, SERVER_NAMES, SERVICE_ENVIRONMENT
from bench.stats import Figure, Report, Summary
from bench.workspace import Workspace, service_modules
from harness.commands import run

BENCH_DIR = Path(__file__).resolve().parent
DRIVER_FILES = ("bare_app.py", "handwritten_app.py", "asgi_driver.py")
REQUESTS = 300
"""Per endpoint and server: under callgrind a request runs about fifty times slower."""


def measure_core_costs(workspace: Workspace, report: Report) -> None:
    """Instructions per in-process request of every server, per endpoint, beside its baseline."""
    service = workspace.reference_service()
    package, core = service_modules(service)
    folder = workspace.fresh("core-costs")
    folder.mkdir(parents=True)
    for name in DRIVER_FILES:
        shutil.copy2(BENCH_DIR / name, folder / name)
    python = str(service / ".venv" / "bin" / "python")
    modules = f"{package}:{core}"
    env = {
        **workspace.env,
        **SERVICE_ENVIRONMENT,
        PAYLOADS_VARIABLE: str(folder / "payloads.json"),
    }
    run([python, "asgi_driver.py", modules, "record", "payloads.json"], cwd=folder, env=env)
    counts: dict[str, list[float]] = {}
    for server in SERVER_NAMES:
        segments = callgrind_segments(
            [python, "asgi_driver.py", modules, server, str(REQUESTS)],
            mark="getppid",
            cwd=folder,
            env=env,
        )
        # start-up, then one segment per endpoint, then the exit
        counts[server] = [count / REQUESTS / 1000 for count in segments[1 : 1 + len(ENDPOINTS)]]
    for index, endpoint in enumerate(ENDPOINTS):
        for ours, base in COMPARISONS:
            report.figures.append(
                Figure(
                    section="core-costs",
                    name=f"{endpoint.name}, in-process instructions: {SERVER_NAMES[ours]}",
                    unit="k",
                    value=Summary.of([counts[ours][index]]),
                    baseline_name=SERVER_NAMES[base],
                    baseline=Summary.of([counts[base][index]]),
                    note="in-process",
                )
            )
    (folder / "counts.json").write_text(json.dumps(counts))
