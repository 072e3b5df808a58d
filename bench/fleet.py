"""`fleet report` and `fleet test-core`, each beside what it cannot do without, in the same run.

`fleet report` on a fleet of 20 services, a workspace and three bad entries (harness.fleet), against
the shallow clones alone. Both sides read the same local bare repositories, 8 at a time (`fleet
report`'s default --jobs): the report is the command line a platform team types, Python start-up and
all, with no `gh` on PATH (a real gh asks GitHub's API, which no local measurement can stand for);
the baseline is one `git clone --depth=1 --no-checkout` per entry, run by xargs (no Python in the
way).
"""

from __future__ import annotations

import math
import os
import shutil
import sys
import urllib.parse
import urllib.request
from pathlib import Path, PurePosixPath

from bench.stats import Report, Target
from bench.workspace import Workspace, alternate, timed, timed_command
from fleet.probe import clone_url
from fleet.sources import read_fleet_file
from harness.commands import run
from harness.core_index import CORE_PROJECT
from harness.fleet import build_core_fleet, build_fleet

FLEET_TARGET = Target("<=", 2.0)
"""Issue 20: `fleet report` takes at most 2x the clones alone."""
JOBS = 8


def measure_fleet(workspace: Workspace, report: Report) -> None:
    """`fleet report` on 20 services, a workspace and 3 bad entries, against the clones alone."""
    index = Path(urllib.request.url2pathname(urllib.parse.urlsplit(workspace.index_url).path))
    fleet = build_fleet(workspace.fresh("fleet"), index)
    env = {**fleet.env, "PATH": fleet.env["PATH"].split(":", 1)[1]}
    urls = [clone_url(repository.url) for repository in read_fleet_file(fleet.fleet_file)]
    output = workspace.fresh("fleet-report")
    report_command = [
        sys.executable, "-m", "fleet", "report", "--jobs", str(JOBS),
        "--fleet", str(fleet.fleet_file), "--output", str(output),
    ]  # fmt: skip

    def clones_alone() -> None:
        scratch = workspace.fresh("clones", create=True)
        plan = scratch / "clones.txt"
        plan.write_text("".join(f"{url} {scratch / str(n)}\n" for n, url in enumerate(urls)))
        run(
            ["xargs", "-a", str(plan), "-P", str(JOBS), "-L", "1",
             "git", "clone", "--quiet", "--depth=1", "--no-checkout"],
            env=env,
            check=False,  # the unreachable entry fails, as it does in the report
        )  # fmt: skip
        shutil.rmtree(scratch)

    samples = alternate(
        {
            "report": timed_command(report_command, cwd=fleet.root, env=env),
            "clones": lambda: timed(clones_alone),
        },
        workspace.options.repetitions,
        warmups=1,
    )
    report.add(
        "fleet",
        f"fleet report, {len(urls)} repositories (20 services, a workspace of 2, 3 bad)",
        "s",
        samples["report"],
        samples["clones"],
        baseline_name="the shallow clones alone",
        target=FLEET_TARGET,
        note=f"{JOBS} at a time; no gh (pull requests: unknown)",
    )


TEST_CORE_TARGET = Target("<=", 1.3)
"""Issue 30: `fleet test-core` within 1.3x the slowest service's check x ceil(services / jobs)."""


def measure_test_core(workspace: Workspace, report: Report) -> None:
    """`fleet test-core` on 6 services, against the slowest service's own check x rounds.

    The fleet of harness.fleet.build_core_fleet, the working tree's core as the candidate, --jobs
    at its default (one per core); each service's `make check` runs alone in a fresh clone."""
    fleet = build_core_fleet(workspace.fresh("core-fleet"), workspace.template, workspace.index_url)
    jobs = os.cpu_count() or 2
    rounds = math.ceil(len(fleet.services) / jobs)
    test_core = timed_command(
        [sys.executable, "-m", "fleet", "test-core", "--core", str(CORE_PROJECT), "--label",
         "bench", "--fleet", str(fleet.fleet_file), "--output", str(workspace.fresh("out"))],
        cwd=fleet.root,
    )  # fmt: skip

    def slowest_check() -> float:
        seconds = []
        for service in fleet.services:
            repository, _, folder = service.partition("/")
            clone = workspace.fresh(f"check-{repository}")
            run(["git", "clone", "--quiet", str(fleet.remotes[repository]), str(clone)])
            member = [f"PACKAGE={PurePosixPath(folder).name}"] if folder else []
            seconds.append(timed_command(["make", "check", *member], cwd=clone)())
        return max(seconds)

    samples = alternate(
        {"test-core": test_core, "checks": lambda: slowest_check() * rounds},
        workspace.options.repetitions,
    )
    report.add(
        "fleet",
        f"fleet test-core, {len(fleet.services)} services (one a workspace member)",
        "s",
        samples["test-core"],
        samples["checks"],
        baseline_name=f"slowest service's make check x {rounds} "
        f"(ceil({len(fleet.services)} / {jobs} jobs))",
        target=TEST_CORE_TARGET,
        note="each check in a fresh clone, as test-core runs it; the candidate built each run",
    )
