"""`python -m bench`: run the benchmarks, print the table, write it to bench/results/.

Sections run in a scratch folder under the system's temporary directory and clean up after
themselves (--keep leaves it for inspection). A section that cannot run (a broken template, a
failing command) is reported as an error and the others still run; the exit status is then 1. A
section that needs a tool this machine lacks (an instruction counter) is listed as not measured,
and the exit status stays 0. A missed budget is a finding, not a failure: it is marked MISSED and
profiled, and the exit status stays 0.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from bench.affected import measure_affected
from bench.fleet import measure_fleet, measure_test_core
from bench.generation import measure_copy, measure_time_to_green, measure_update
from bench.imports import measure_imports
from bench.load import (
    measure_core_costs,
    measure_load,
    measure_postgres_load,
    measure_telemetry,
)
from bench.stats import NotMeasuredError, Report, render_json, render_markdown
from bench.worker import measure_worker
from bench.workspace import Options, Workspace
from harness.commands import REPO_ROOT, run

Section = Callable[[Workspace, Report], None]
SECTIONS: dict[str, Section] = {
    "copy": measure_copy,
    "update": measure_update,
    "green": measure_time_to_green,
    "import": measure_imports,
    "load": measure_load,
    "core-costs": measure_core_costs,
    "load-postgres": measure_postgres_load,
    "telemetry": measure_telemetry,
    "affected": measure_affected,
    "fleet": measure_fleet,
    "worker": measure_worker,
    "test-core": measure_test_core,
}
"""Each section's description is the first line of its function's docstring."""


def describe(section: Section) -> str:
    return " ".join((section.__doc__ or "").split("\n\n")[0].split()).rstrip(".")


RESULTS = Path(__file__).resolve().parent / "results"
COUNTS = {
    "repetitions": ("timed runs per figure", 5, 1),
    "rounds": ("load rounds per endpoint and server", 6, 1),
    "seconds": ("seconds per load round", 3, 2),
}
"""Each count option: what it counts, its default and --quick's. At most MAX_COUNT: all loops here
are bounded."""
MAX_COUNT = 1000


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description=(
            "Measure the template against its performance budgets (DESIGN.md). Every figure is a "
            "median (min-max) over repeated runs beside a baseline measured in the same run."
        ),
        epilog="Sections: " + "; ".join(f"{name}: {describe(f)}" for name, f in SECTIONS.items()),
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="a fast smoke run: 1 repetition, no warm-up, one short load round (figures are rough)",
    )
    for name, (what, full, quick) in COUNTS.items():
        flags = ["-n", f"--{name}"] if name == "repetitions" else [f"--{name}"]
        parser.add_argument(*flags, type=int, help=f"{what} (default {full}; --quick {quick})")
    parser.add_argument(
        "--sections",
        default=",".join(SECTIONS),
        help=f"comma-separated sections to run (default: all: {','.join(SECTIONS)})",
    )
    parser.add_argument(
        "--profile",
        choices=("missed", "all", "none"),
        default="missed",
        help="what to profile: the figures that miss their budget (default), all, or none",
    )
    parser.add_argument(
        "--keep", action="store_true", help="keep the scratch folder (services, logs, profiles)"
    )
    parser.add_argument(
        "--service",
        type=Path,
        help="for the import, load, core-costs and telemetry sections: an existing, `uv sync`ed "
        "service to measure instead of the one generated from the template with the defaults (to "
        "try a change before making it); the postgres variant is always generated",
    )
    parser.add_argument(
        "--results", type=Path, default=RESULTS, help=f"where to write results (default {RESULTS})"
    )
    args = parser.parse_args(argv)
    unknown = set(args.sections.split(",")) - set(SECTIONS)
    if unknown:
        parser.error(
            f"unknown section(s) {', '.join(sorted(unknown))}; choose from {', '.join(SECTIONS)}"
        )
    for name, (_, full, quick) in COUNTS.items():
        value = getattr(args, name)
        if value is None:
            setattr(args, name, quick if args.quick else full)
        elif not 1 <= value <= MAX_COUNT:
            parser.error(f"--{name} must be between 1 and {MAX_COUNT}")
    return args


def describe_environment(options: Options, sections: Sequence[str]) -> dict[str, str]:
    """What the figures depend on, recorded with them."""

    def output(*args: str) -> str:
        result = run(list(args), cwd=REPO_ROOT, check=False)
        return (result.stdout.strip() or result.stderr.strip() or "?").splitlines()[0]

    dirty = output("git", "status", "--porcelain") not in ("?", "")
    return {
        "date": time.strftime("%Y-%m-%d %H:%M:%S %z"),
        "commit": output("git", "rev-parse", "--short", "HEAD") + (" (modified)" if dirty else ""),
        "machine": f"{platform.node()}, {platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f} at start",
        "python (tooling)": platform.python_version(),
        "copier": output(sys.executable, "-m", "copier", "--version").split()[-1],
        "uv": output("uv", "--version"),
        "sections": ", ".join(sections),
        "repetitions": f"{options.repetitions} timed after {options.warmups} warm-up",
        "load": f"{options.load_rounds} rounds x {options.load_seconds} s per endpoint and server "
        "after a warm-up round, 32 connections, server on CPU 0, wrk and httperf on CPU 1",
    }


def write_results(report: Report, directory: Path) -> list[Path]:
    """Timestamped files plus `latest.*`, so a run never overwrites an earlier one."""
    directory.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(report.started))
    written = []
    for suffix, text in (("json", render_json(report)), ("md", render_markdown(report))):
        for name in (f"bench-{stamp}.{suffix}", f"latest.{suffix}"):
            (directory / name).write_text(text)
            written.append(directory / name)
    return written


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    warmups = 0 if args.quick else 1
    options = Options(
        args.repetitions, warmups, args.rounds, args.seconds, args.profile, args.keep, args.service
    )
    sections = [name for name in SECTIONS if name in args.sections.split(",")]
    report = Report(environment=describe_environment(options, sections))
    # Without .pyc files every Python start compiles its imports again (copier's alone take
    # seconds): measure with the byte-code cache a developer's machine has.
    if os.environ.pop("PYTHONDONTWRITEBYTECODE", None):
        report.environment["PYTHONDONTWRITEBYTECODE"] = "set by the caller; unset for the run"
    workspace = Workspace(Path(tempfile.mkdtemp(prefix="smplkit-bench-")), options)
    try:
        progress(
            f"preparing: the core's local index and the template snapshot, in {workspace.root}"
        )
        workspace.prepare()
        run_sections({name: SECTIONS[name] for name in sections}, workspace, report)
    except Exception as error:  # noqa: BLE001 - still write what was measured
        report.errors.append(f"preparation: {type(error).__name__}: {shorten(str(error))}")
        traceback.print_exc()
    finally:
        workspace.cleanup()
        if options.keep:
            progress(f"scratch folder kept: {workspace.root}")
    print()
    print(render_markdown(report), end="")
    for path in write_results(report, args.results):
        progress(f"wrote {path}")
    return 1 if report.errors else 0


def run_sections(sections: Mapping[str, Section], workspace: Workspace, report: Report) -> None:
    """Each section in turn; one that fails or lacks a tool is recorded, and the next one runs."""
    for name, measure in sections.items():
        progress(f"{name}: {describe(measure)}")
        started = time.perf_counter()
        try:
            measure(workspace, report)
        except NotMeasuredError as missing:
            report.not_measured.append(f"{name}: {missing}")
        except Exception as error:  # noqa: BLE001 - one broken section must not hide the others
            report.errors.append(f"{name}: {type(error).__name__}: {shorten(str(error))}")
            traceback.print_exc()
        progress(f"{name}: done in {time.perf_counter() - started:.0f} s")


def shorten(text: str, head: int = 8, tail: int = 30) -> str:
    """An error's first and last lines: a failing command's output can run to thousands."""
    lines = text.splitlines()
    if len(lines) <= head + tail:
        return text
    return "\n".join([*lines[:head], f"[... {len(lines) - head - tail} lines ...]", *lines[-tail:]])


def progress(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)


if __name__ == "__main__":
    sys.exit(main())
