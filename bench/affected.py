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

from bench.stats import Report, Target
from bench.workspace import Workspace, alternate, timed_command
from harness.affected_workspace import CHANGES, LIBRARIES, build_history, service_names
from harness.commands import run

AFFECTED_TARGET = Target("<=", 2000, on="value")
"""Issue 19: `make affected` within 2 s on a 40-member workspace."""


def measure_affected(workspace: Workspace, report: Report) -> None:
    """tools/affected.py per change on a 40-member workspace, against `uv lock --check`."""
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
        affected = [sys.executable, "tools/affected.py", "--base", history.before(change)]
        affected += ["--format", "json"]
        samples = alternate(
            {
                "affected": timed_command(affected, cwd=worktree),
                "floor": timed_command(["uv", "lock", "--check", "--offline"], cwd=worktree),
            },
            options.repetitions,
            options.warmups,
        )
        matrix = json.loads(run(affected, cwd=worktree).stdout)["include"]
        checks, deploys = len(matrix), sum(entry["deploy"] for entry in matrix)
        report.add(
            "affected",
            f"tools/affected.py, {change.name}",
            "ms",
            [seconds * 1000 for seconds in samples["affected"]],
            [seconds * 1000 for seconds in samples["floor"]],
            baseline_name="uv lock --check",
            target=AFFECTED_TARGET,
            note=f"CI jobs: {checks}/{members} checks, {deploys}/{services} deploys",
        )
        jobs.append(f"{change.name:<45} {checks:>8} {deploys:>8}")
    report.add_note("affected: CI jobs per change against checking everything", jobs)
