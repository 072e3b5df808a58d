"""Affected-only CI at scale: tools/affected.py on the 40-member workspace of
harness/affected_workspace.py, for each fixed change of the issue.

For each change (a commit of the workspace's history) the module's wall time, as CI's `affected`
job runs it (`python3 tools/affected.py --base <the commit before> --format json`; `make affected`
runs the same under `uv run`), beside `uv lock --check` in the same worktree, the floor of any
tool that reads the lock; and the CI jobs the change runs against checking every member.
"""

from __future__ import annotations

import json
import sys

from harness.affected_workspace import CHANGES, LIBRARIES, build_history, service_names
from bench.stats import Figure, Report, Summary, Target
from bench.workspace import Workspace, command, timed

AFFECTED_TARGET = Target("<=", 2000)
"""Issue 19: `make affected` within 2 s on a 40-member workspace."""


def measure_affected(workspace: Workspace, report: Report) -> None:
    options = workspace.options
    history = build_history(workspace.fresh("affected"))
    members = len(LIBRARIES) + len(service_names())
    services = len(service_names())
    jobs = [
        f"{'change':<45} {'checks':>8} {'deploys':>8}   (test-everything: {members} checks, "
        f"{services} deploys)"
    ]
    for change in CHANGES:
        worktree = history.checkout(change, workspace.fresh("affected-worktree"))
        module = [sys.executable, "tools/affected.py", "--base", history.before(change)]
        affected = command([*module, "--format", "json"], cwd=worktree)
        floor = command(["uv", "lock", "--check", "--offline"], cwd=worktree)
        samples: dict[str, list[float]] = {"affected": [], "floor": []}
        for index in range(options.warmups + options.repetitions):
            for name, action in (("affected", affected), ("floor", floor)):
                seconds = timed(action)
                if index >= options.warmups:
                    samples[name].append(seconds * 1000)
        matrix = json.loads(affected().stdout)["include"]
        checks = len(matrix)
        deploys = sum(entry["deploy"] for entry in matrix)
        report.figures.append(
            Figure(
                section="affected",
                name=f"tools/affected.py, {change.name}",
                unit="ms",
                value=Summary.of(samples["affected"]),
                baseline_name="uv lock --check",
                baseline=Summary.of(samples["floor"]),
                target=AFFECTED_TARGET,
                note=f"CI jobs: {checks}/{members} checks, {deploys}/{services} deploys",
            )
        )
        jobs.append(f"{change.name:<45} {checks:>8} {deploys:>8}")
    report.add_note("affected: CI jobs per change against checking everything", jobs)
