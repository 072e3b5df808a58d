"""Instruction counts: a cost measure that other processes hardly move.

On a shared two-core machine, time (even CPU time) varies with whatever else runs; the number of
user-space instructions a process executes does not, to within a percent. valgrind's callgrind
counts them (its `Ir` total), child processes included, at about fifty times the command's run time,
and counts the phases of one process apart when told where they start. Without valgrind, a figure
that needs a count raises NotMeasuredError: the bench reports it as not measured and goes on.
"""

from __future__ import annotations

import re
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path

from bench.stats import NotMeasuredError
from harness.commands import run

CALLGRIND = ["valgrind", "--tool=callgrind", "--trace-children=yes", "--quiet"]
CALLGRIND_TOTALS = re.compile(r"^totals: (\d+)", re.MULTILINE)
NO_COUNTER = "no instruction counter here: valgrind is missing (`apt-get install valgrind`)"


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
