"""Instruction counts from `perf stat`: a cost measure that other processes hardly move.

On a shared two-core machine, time (even CPU time) varies with whatever else runs; the number of
user-space instructions a process executes does not, to within a percent. Where `perf` works (it
does not in every VM or container), the import and load sections add instruction counts beside
their timings, so a 5 % change in our code shows up even when the timings are noisy.
"""

from __future__ import annotations

import re
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from harness.commands import run

PERF = ["perf", "stat", "--no-big-num", "-x,", "-e", "instructions:u"]
PERF_LINE = re.compile(r"^(\d+),[^,]*,instructions", re.MULTILINE)


@cache
def perf_works() -> bool:
    """`perf stat` counts user-space instructions on this machine (not in every VM or container)."""
    if shutil.which("perf") is None:
        return False
    result = run([*PERF, "true"], check=False, timeout=30)
    return result.returncode == 0 and result.stderr.strip().split(",")[0].isdigit()


@dataclass
class InstructionCount:
    count: int = 0


@contextmanager
def count_instructions(pid: int, *, enabled: bool) -> Iterator[InstructionCount]:
    """Count a running process's user-space instructions while the block runs (perf stat -p)."""
    counted = InstructionCount()
    if not enabled:
        yield counted
        return
    perf = subprocess.Popen(  # noqa: S603 - fixed arguments
        [*PERF, "-p", str(pid)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    try:
        time.sleep(0.1)  # attached before the load starts
        yield counted
    finally:
        perf.send_signal(signal.SIGINT)
        _, stderr = perf.communicate(timeout=30)
        match = PERF_LINE.search(stderr)
        counted.count = int(match.group(1)) if match else 0


def instructions_of(args: Sequence[str], *, cwd: Path, env: Mapping[str, str]) -> int:
    """User-space instructions of one run of a command (0 when perf does not report them)."""
    stderr = run([*PERF, "--", *args], cwd=cwd, env=env).stderr
    match = PERF_LINE.search(stderr)
    return int(match.group(1)) if match else 0
