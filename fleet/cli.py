"""`fleet report`, `fleet update` and `fleet test-core`: the command line."""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import TypeVar

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from fleet import report, trial, update
from fleet.candidate import Candidate, CandidateError, build_candidate, default_label
from fleet.probe import Context, Service, gh_ready, probe
from fleet.sources import FleetFileError, Repository, read_fleet_file, topic_repositories

PIPED_WIDTH = 250
T = TypeVar("T")
R = TypeVar("R")


def parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    source = common.add_argument_group("which repositories")
    source.add_argument(
        "--fleet", type=Path, default=Path("fleet.yml"),
        help="fleet file listing the services (default: fleet.yml)",
    )  # fmt: skip
    source.add_argument("--topic", help="instead: the repositories carrying this GitHub topic…")
    source.add_argument("--org", help="…in this organisation (needs gh, logged in)")
    common.add_argument(
        "--template",
        help="the template's git URL (default: the one each service's answers file records)",
    )
    common.add_argument(
        "--index", help="the index to look the core up on (default: each service's own index)"
    )
    common.add_argument(
        "--jobs", type=int, default=8,
        help="repositories read at once (test-core: and services checked; default one per CPU)",
    )  # fmt: skip
    common.add_argument(
        "--strict", action="store_true",
        help="exit non-zero when a repository cannot be read (report), updated (update) or "
        "tried (test-core)",
    )  # fmt: skip

    main_parser = argparse.ArgumentParser(
        prog="fleet", description="Which services lag the template and the core, and updating them."
    )
    commands = main_parser.add_subparsers(dest="command", required=True)
    report_parser = commands.add_parser(
        "report", parents=[common], help="the fleet's drift: terminal table, Markdown, JSON, HTML"
    )
    report_parser.add_argument(
        "--output", type=Path, default=Path("fleet-report"),
        help="folder for fleet.md, .json, .html and fleet-facts.json (default: fleet-report)",
    )  # fmt: skip
    update_parser = commands.add_parser(
        "update", parents=[common], help="bring the lagging services to the newest release"
    )
    update_parser.add_argument(
        "--only", nargs="+", metavar="NAME", help="only these services (names as in the report)"
    )
    update_parser.add_argument(
        "--local", action="store_true",
        help="run the update here, in scratch clones, instead of each service's workflow",
    )  # fmt: skip
    update_parser.add_argument(
        "--push", action="store_true",
        help="with --local: push each update to its branch template-update/<version>",
    )  # fmt: skip
    update_parser.add_argument(
        "--output", type=Path, default=Path("fleet-update"),
        help="with --local, without --push: where each updated clone is kept (fleet-update)",
    )  # fmt: skip
    test_core_parser = commands.add_parser(
        "test-core", parents=[common],
        help="every service's own checks against a candidate core, before it is published",
    )  # fmt: skip
    test_core_parser.add_argument(
        "--core", type=Path, default=Path("core"),
        help="the core's folder, built as it is (default: core)",
    )  # fmt: skip
    test_core_parser.add_argument(
        "--ref", help="instead: the core's folder at this git reference (a branch, a commit)"
    )
    test_core_parser.add_argument(
        "--label",
        help="the candidate's local version label: <version>+<label> (default: dev.<commit>)",
    )
    test_core_parser.add_argument(
        "--only", nargs="+", metavar="NAME",
        help="only these repositories or services (names as in the report)",
    )  # fmt: skip
    test_core_parser.add_argument(
        "--output", type=Path, default=Path("fleet-test-core"),
        help="folder for test-core.md, test-core.json and each service's log (default: "
        "fleet-test-core)",
    )  # fmt: skip
    test_core_parser.set_defaults(jobs=os.cpu_count() or 2)
    return main_parser


def repositories(arguments: argparse.Namespace) -> list[Repository]:
    if arguments.topic or arguments.org:
        if not (arguments.topic and arguments.org):
            raise FleetFileError("--topic and --org go together")
        return topic_repositories(arguments.org, arguments.topic)
    return read_fleet_file(arguments.fleet)


def progress_bar(what: str) -> Progress:
    """A progress bar on stderr, gone once done."""
    columns = (TextColumn(what), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    return Progress(*columns, console=Console(stderr=True), transient=True)


def in_parallel(items: Iterable[T], work: Callable[[T, Path], R], jobs: int, what: str) -> list[R]:
    """`work(item, scratch folder)` for every item, `jobs` at a time, with a progress bar on
    stderr; the results in the items' order."""
    items = list(items)
    with (
        tempfile.TemporaryDirectory(prefix="fleet-") as scratch,
        progress_bar(what) as progress,
        ThreadPoolExecutor(max_workers=max(1, jobs)) as pool,
    ):
        task = progress.add_task(what, total=len(items))

        def one(numbered: tuple[int, T]) -> R:
            folder = Path(scratch) / str(numbered[0])
            folder.mkdir()
            try:
                return work(numbered[1], folder)
            finally:
                progress.advance(task)

        return list(pool.map(one, enumerate(items)))


def read_fleet(arguments: argparse.Namespace) -> list[Service]:
    context = Context(template=arguments.template, index_url=arguments.index, use_gh=gh_ready())
    found = in_parallel(
        repositories(arguments),
        lambda repository, scratch: probe(repository, scratch, context),
        arguments.jobs,
        "Reading the fleet",
    )
    return [service for services in found for service in services]


def run_report(arguments: argparse.Namespace, console: Console) -> int:
    services = read_fleet(arguments)
    now = datetime.now(UTC)
    report.terminal(services, now, console)
    output: Path = arguments.output
    output.mkdir(parents=True, exist_ok=True)
    (output / "fleet.md").write_text(report.markdown(services, now))
    (output / "fleet.json").write_text(report.as_json(services, now))
    (output / "fleet.html").write_text(report.html_page(services, now))
    (output / "fleet-facts.json").write_text(report.portal_facts(services, now))
    for service in report.entities(services)[1]:
        console.print(f"{service.name}: {service.entity} is another's too: not in the facts")
    console.print(f"Written: {output}/fleet.md, fleet.json, fleet.html, fleet-facts.json")
    failed = any(service.error for service in services)
    return 1 if arguments.strict and failed else 0


def lagging_repositories(
    services: list[Service], chosen: list[Service], console: Console
) -> list[tuple[Repository, list[Service]]]:
    """The repositories of the chosen lines that lag, each with its readable lines: a repository is
    updated whole (a workspace's root, then every service in it, on one branch), whichever of its
    lines --only names. Says which lines are skipped or up to date."""
    by_repository: dict[str, list[Service]] = {}
    for service in services:
        by_repository.setdefault(service.repository, []).append(service)
    lagging: list[tuple[Repository, list[Service]]] = []
    for url in dict.fromkeys(service.repository for service in chosen):
        lines = by_repository[url]
        readable = [line for line in lines if line.error is None]
        for line in lines:
            if line.error:
                console.print(f"{line.name}: skipped, {line.error}")
        if any(line.behind for line in readable):
            lagging.append((Repository(lines[0].name, url), readable))
        else:
            for line in readable:
                console.print(f"{line.name}: up to date ({line.version})")
    return lagging


def run_update(arguments: argparse.Namespace, console: Console) -> int:
    if arguments.push and not arguments.local:
        raise FleetFileError("--push goes with --local (the workflows push their own branches)")
    services = read_fleet(arguments)
    known = {service.name for service in services}
    unknown = sorted(set(arguments.only or []) - known)
    if unknown:
        raise FleetFileError(f"--only names no service of the fleet: {', '.join(unknown)}")
    chosen = [s for s in services if not arguments.only or s.name in arguments.only]
    lagging = lagging_repositories(services, chosen, console)
    if arguments.local:
        keep_in: Path = arguments.output.resolve()
        keep_in.mkdir(parents=True, exist_ok=True)
        outcomes = in_parallel(
            lagging,
            lambda pair, scratch: update.update_locally(
                *pair, scratch, push=arguments.push, keep_in=keep_in
            ),
            arguments.jobs,
            "Updating",
        )
    else:
        outcomes = [update.start_workflow(*pair) for pair in lagging]
    for outcome in outcomes:
        detail = ", ".join(outcome.conflicts) or outcome.detail
        pushed = f" -> {outcome.branch}" if outcome.branch and outcome.status != "failed" else ""
        line = f"{', '.join(outcome.services)}: {outcome.status}{pushed}"
        line += f" ({detail})" if detail else ""
        line += f"; {outcome.changes}" if outcome.changes else ""
        if outcome.kept:
            line += f"; not pushed: the result is in {outcome.kept} (git status there)"
        console.print(line, markup=False, highlight=False, soft_wrap=True)
    failed = any(outcome.status in ("failed", "conflicted") for outcome in outcomes)
    return 1 if arguments.strict and (failed or any(s.error for s in chosen)) else 0


def try_fleet(
    chosen: list[Repository],
    candidate: Candidate,
    root: Path,
    jobs: int,
    selected: Callable[[str], bool],
) -> list[trial.Trial]:
    """Each repository's locks moved to the candidate (`jobs` at a time: clones and locks wait on
    the network), and each of its chosen services' checks started as soon as that is done (`jobs`
    at a time, apart: the checks use the CPUs). The lines in the fleet's order."""
    lock = threading.Lock()
    with (
        progress_bar("Trying the candidate") as progress,
        ThreadPoolExecutor(max_workers=max(1, jobs)) as preparing,
        ThreadPoolExecutor(max_workers=max(1, jobs)) as checking,
    ):
        task = progress.add_task("", total=len(chosen))

        def check(item: trial.Check) -> trial.Trial:
            try:
                return trial.run_check(item)
            finally:
                progress.advance(task)

        def prepare(number: int, repository: Repository) -> list[trial.Trial | Future[trial.Trial]]:
            try:
                found = trial.prepare(repository, root / str(number), candidate)
            finally:
                progress.advance(task)
            lines: list[trial.Trial | Future[trial.Trial]] = []
            for item in found:
                if not selected(
                    item.trial.service if isinstance(item, trial.Check) else item.service
                ):
                    continue
                if isinstance(item, trial.Check):
                    with lock:
                        progress.update(task, total=(progress.tasks[0].total or 0) + 1)
                    lines.append(checking.submit(check, item))
                else:
                    lines.append(item)
            return lines

        prepared = [preparing.submit(prepare, *numbered) for numbered in enumerate(chosen)]
        lines = [line for future in prepared for line in future.result()]
        return [line.result() if isinstance(line, Future) else line for line in lines]


def run_test_core(arguments: argparse.Namespace, console: Console) -> int:
    only = set(arguments.only or [])

    def selected(name: str) -> bool:
        """Whether --only chose the service or repository `name` (or one of its services)."""
        return not only or any(
            wanted == name or wanted.startswith(f"{name}/") or name.startswith(f"{wanted}/")
            for wanted in only
        )

    chosen = [repository for repository in repositories(arguments) if selected(repository.name)]
    if not chosen:
        raise FleetFileError(f"--only names nothing of the fleet: {', '.join(sorted(only))}")
    with tempfile.TemporaryDirectory(prefix="fleet-test-core-") as scratch:
        root = Path(scratch)
        label = arguments.label or default_label(arguments.core)
        candidate = build_candidate(arguments.core, label, root / "candidate", arguments.ref)
        console.print(f"Candidate: {candidate.name} {candidate.version}", highlight=False)
        trials = try_fleet(chosen, candidate, root, arguments.jobs, selected)
    trial.terminal(trials, candidate, console)
    output: Path = arguments.output
    (output / "logs").mkdir(parents=True, exist_ok=True)
    for line in trials:
        (output / "logs" / trial.log_name(line.service)).write_text(line.log or line.detail + "\n")
    (output / "test-core.md").write_text(trial.markdown(trials, candidate))
    (output / "test-core.json").write_text(trial.as_json(trials, candidate))
    console.print(f"Written: {output}/test-core.md, test-core.json, logs/")
    failed = any(line.status == trial.FAILED for line in trials)
    not_run = any(line.status == trial.NOT_RUN for line in trials)
    return 1 if failed or (arguments.strict and not_run) else 0


def main(argv: list[str] | None = None) -> int:
    arguments = parser().parse_args(argv)
    # Piped into a file or a CI log, the table keeps one line per service.
    console = Console(width=None if sys.stdout.isatty() else PIPED_WIDTH)
    try:
        if arguments.command == "report":
            return run_report(arguments, console)
        if arguments.command == "test-core":
            return run_test_core(arguments, console)
        return run_update(arguments, console)
    except (FleetFileError, CandidateError) as error:
        console.print(f"fleet: {error}", style="red", highlight=False)
        return 2
