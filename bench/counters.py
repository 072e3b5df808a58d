"""Instruction counts: a cost measure that other processes hardly move.

On a shared two-core machine, time (even CPU time) varies with whatever else runs; the number of
user-space instructions a process executes does not, to within a percent. `perf stat` counts them
where it works (not in every VM or container); elsewhere valgrind's callgrind counts them (its `Ir`
total) at about fifty times the command's run time. Where neither works, a figure that needs a
count raises NotMeasuredError: the bench reports it as not measured and goes on.
"""

from __future__ import annotations

import re
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from functools import cache
from pathlib import Path
from typing import Literal

from bench.stats import NotMeasuredError
from harness.commands import run

PERF = ["perf", "stat", "--no-big-num", "-x,", "-e", "instructions:u"]
PERF_LINE = re.compile(r"^(\d+),[^,]*,instructions", re.MULTILINE)
CALLGRIND = ["valgrind", "--tool=callgrind", "--trace-children=yes", "--quiet"]
"""Child processes counted too, as `perf stat` counts them."""
CALLGRIND_TOTALS = re.compile(r"^totals: (\d+)", re.MULTILINE)
NO_COUNTER = (
    "no instruction counter works here: `perf stat` cannot count instructions (Debian: "
    "`apt-get install linux-perf`; some VMs and containers forbid it) and valgrind is missing "
    "(`apt-get install valgrind`)"
)

Counter = Literal["perf", "callgrind"]


@cache
def perf_works() -> bool:
    """`perf stat` counts user-space instructions on this machine (not in every VM or container:
    there it prints `<not supported>` and still exits 0)."""
    if shutil.which("perf") is None:
        return False
    result = run([*PERF, "true"], check=False, timeout=30)
    return result.returncode == 0 and result.stderr.strip().split(",")[0].isdigit()


@cache
def instruction_counter() -> Counter | None:
    """The tool that counts instructions here: perf, else callgrind, else None."""
    if perf_works():
        return "perf"
    if shutil.which("valgrind") is not None:
        with tempfile.TemporaryDirectory(prefix="bench-callgrind-") as folder:
            if sum(callgrind_totals(["true"], cwd=Path(folder), env={})) > 0:
                return "callgrind"
    return None


def instructions_of(args: Sequence[str], *, cwd: Path, env: Mapping[str, str]) -> int:
    """User-space instructions of one run of a command, its child processes included.

    Raises NotMeasuredError where no counter works."""
    counter = instruction_counter()
    if counter is None:
        raise NotMeasuredError(NO_COUNTER)
    if counter == "callgrind":
        return sum(callgrind_totals(args, cwd=cwd, env=env))
    stderr = run([*PERF, "--", *args], cwd=cwd, env=env).stderr
    match = PERF_LINE.search(stderr)
    if match is None:
        raise NotMeasuredError(f"perf stat reported no instruction count:\n{stderr}")
    return int(match.group(1))


def callgrind_totals(
    args: Sequence[str], *, cwd: Path, env: Mapping[str, str], dump_before: str = ""
) -> list[int]:
    """The instructions of each process, or with `dump_before` (a C function) of one process
    between its calls of it, in order: up to the first call, ..., from the last call to the exit.

    callgrind dumps its counters on entering that function, so a program that calls it between
    phases has each counted apart in one run. Raises NotMeasuredError without valgrind."""
    if shutil.which("valgrind") is None:
        raise NotMeasuredError(NO_COUNTER)
    dump = [f"--dump-before={dump_before}"] if dump_before else []
    with tempfile.TemporaryDirectory(prefix="bench-callgrind-") as folder:
        output = f"--callgrind-out-file={folder}/callgrind.out.%p"
        run([*CALLGRIND, *dump, output, *args], cwd=cwd, env=env, timeout=3600)
        # callgrind.out.PID.N for the N-th dump of process PID, callgrind.out.PID at its exit
        paths = sorted(Path(folder).iterdir(), key=lambda p: (-len(p.suffixes), int(p.suffix[1:])))
        return [
            int(match.group(1))
            for path in paths
            for match in CALLGRIND_TOTALS.finditer(path.read_text(errors="replace"))
        ]
