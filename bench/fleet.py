"""`fleet report` on a fleet of 20 services, a workspace and three bad entries (harness.fleet),
against the shallow clones alone that it cannot do without, timed in the same run.

Both sides read the same local bare repositories, 8 at a time (`fleet report`'s default --jobs):
the report is the command line a platform team types, Python start-up and all, with no `gh` on
PATH (a real gh asks GitHub's API, which no local measurement can stand for); the baseline is one
`git clone --depth=1 --no-checkout` per entry, run by xargs (no Python in the way).
"""

from __future__ import annotations

import shutil
import sys
import urllib.parse
import urllib.request
from pathlib import Path

from bench.stats import Figure, Report, Summary, Target
from bench.workspace import Workspace, timed
from fleet.probe import clone_url
from fleet.sources import read_fleet_file
from harness.commands import run
from harness.fleet import build_fleet

FLEET_TARGET = Target("<=", 2.0, on="ratio")
"""Issue 20: `fleet report` takes at most 2x the clones alone."""
JOBS = 8


def measure_fleet(workspace: Workspace, report: Report) -> None:
    index = Path(urllib.request.url2pathname(urllib.parse.urlsplit(workspace.index_url).path))
    fleet = build_fleet(workspace.fresh("fleet"), index)
    env = {**fleet.env, "PATH": fleet.env["PATH"].split(":", 1)[1]}
    urls = [clone_url(repository.url) for repository in read_fleet_file(fleet.fleet_file)]
    output = workspace.fresh("fleet-report")
    report_command = [
        sys.executable, "-m", "fleet", "report", "--jobs", str(JOBS),
        "--fleet", str(fleet.fleet_file), "--output", str(output),
    ]  # fmt: skip

    def fleet_report() -> None:
        run(report_command, cwd=fleet.root, env=env)

    def clones_alone() -> None:
        scratch = workspace.fresh("clones")
        scratch.mkdir(parents=True)
        plan = scratch / "clones.txt"
        plan.write_text("".join(f"{url} {scratch / str(n)}\n" for n, url in enumerate(urls)))
        run(
            ["xargs", "-a", str(plan), "-P", str(JOBS), "-L", "1",
             "git", "clone", "--quiet", "--depth=1", "--no-checkout"],
            env=env,
            check=False,  # the unreachable entry fails, as it does in the report
        )  # fmt: skip
        shutil.rmtree(scratch)

    fleet_report()
    clones_alone()
    reports, clones = [], []
    for _ in range(workspace.options.repetitions):
        reports.append(timed(fleet_report))
        clones.append(timed(clones_alone))
    report.figures.append(
        Figure(
            section="fleet",
            name=f"fleet report, {len(urls)} repositories (20 services, a workspace of 2, 3 bad)",
            unit="s",
            value=Summary.of(reports),
            baseline_name="the shallow clones alone",
            baseline=Summary.of(clones),
            target=FLEET_TARGET,
            note=f"{JOBS} at a time; no gh (pull requests: unknown)",
        )
    )
