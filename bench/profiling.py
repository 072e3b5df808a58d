"""Where the time goes, for the figures that miss their budget (or all of them with --profile).

Commands (copier) are profiled with cProfile and summarised by pstats; a running server with
py-spy (`uv tool run py-spy`, from PyPI), which samples a live process without changing it. A
server's samples are charged to an owner: the package of the innermost frame that belongs to one
(site-packages/X or src/X), so the standard library and C code a package calls count as that
package's, and our packages show as `ours: core/` and `ours: template/`.
"""

from __future__ import annotations

import io
import pstats
import re
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from harness.commands import run, tool_env

PYSPY = ["uv", "tool", "run", "py-spy", "record", "--rate", "250", "--format", "raw"]
"""250 samples per second: enough for a stable per-request split within a few seconds."""
PACKAGE = re.compile(r"/(?:site-packages|dist-packages|src)/(\w+)")


def profile_command(
    module_and_args: Sequence[str], *, cwd: Path, env: Mapping[str, str], output: Path
) -> list[str]:
    """Run `python -m MODULE ARGS` under cProfile: the functions with the most self time (waiting
    on git and uv shows as C builtins). The raw profile stays at `output` (kept with --keep)."""
    run(
        [sys.executable, "-m", "cProfile", "-o", str(output), "-m", *module_and_args],
        cwd=cwd,
        env=env,
    )
    stream = io.StringIO()
    pstats.Stats(str(output), stream=stream).sort_stats("tottime").print_stats(15)
    return [f"profile: {output} (kept with --keep)", *filter(None, stream.getvalue().splitlines())]


def owner(stack: str, ours: Mapping[str, str]) -> str:
    """Who pays for a sampled stack (`function (file:line);...`, outermost first)."""
    for frame in reversed(stack.split(";")):
        packages = PACKAGE.findall(frame)
        if packages:
            return ours.get(packages[-1], packages[-1])
    return "other (interpreter, stdlib alone)"


def profile_servers(
    pids: Mapping[str, int],
    drive: Callable[[str, int], float],
    *,
    seconds: int,
    output_dir: Path,
    ours: Mapping[str, str],
) -> list[str]:
    """Sample each server with py-spy while `drive(name, seconds)` loads it and returns its CPU
    microseconds per request: that CPU time split by owner, the servers side by side."""
    per_request: dict[str, Counter[str]] = {}
    for name, pid in pids.items():
        raw, log = output_dir / f"{name}.collapsed.txt", output_dir / f"{name}.py-spy.log"
        args = [*PYSPY, "--pid", str(pid), "--duration", str(seconds + 2), "--full-filenames"]
        with log.open("w") as output:
            spy = subprocess.Popen(  # noqa: S603 - fixed arguments
                [*args, "--nonblocking", "--output", str(raw)],
                env=tool_env(),
                stdout=output,
                stderr=output,
            )
        try:
            time.sleep(1.0)  # attached before the load starts
            cpu_us = drive(name, seconds)
            spy.wait(timeout=seconds + 300)
        finally:
            if spy.poll() is None:
                spy.kill()
                spy.wait(timeout=10)
        if not raw.exists():
            return [f"py-spy wrote no profile for {name}: see {log}"]
        samples: Counter[str] = Counter()
        for row in raw.read_text().splitlines():
            stack, _, count = row.rpartition(" ")
            samples[owner(stack, ours)] += int(count)
        total = sum(samples.values()) or 1
        per_request[name] = Counter({who: cpu_us * n / total for who, n in samples.items()})
    names = list(per_request)
    lines = [f"CPU microseconds per request by owner ({' | '.join(names)}); stacks in {output_dir}"]
    for who, _ in sum(per_request.values(), Counter[str]()).most_common(14):
        lines.append("  ".join(f"{per_request[name][who]:8.1f}" for name in names) + f"  {who}")
    totals = "  ".join(f"{sum(per_request[name].values()):8.1f}" for name in names)
    return [*lines, f"{totals}  total"]
