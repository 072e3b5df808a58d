"""Where the time goes, for the figures that miss their budget (or all of them with --profile).

Commands (copier) are profiled with cProfile; the running service with py-spy (`uv tool run
py-spy`, from PyPI), which samples a live process without changing it. Time is attributed to an
owner: ours (core/ or template/ code) or the dependency the code belongs to. Standard-library and
C frames are charged to the nearest package frame above them, so `json.dumps` called by starlette
counts as starlette, and logging called by the core counts as the core.
"""

from __future__ import annotations

import pstats
import re
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path, PurePath

from harness.commands import run, tool_env

STDLIB = re.compile(r"/lib/python3\.\d+/(?!site-packages/)")
PYSPY = ["uv", "tool", "run", "py-spy"]
PYSPY_RATE = 250
"""Samples per second: enough for a stable per-request split within a few seconds."""
BUILTIN, STDLIB_OWNER, UNKNOWN = "C builtins", "stdlib", "other"


def owner(filename: str, ours: Mapping[str, str]) -> str:
    """The package a frame's file belongs to: a top-level import name, or one of ours."""
    if filename in ("~", "") or filename.startswith("<"):
        return BUILTIN
    parts = PurePath(filename).parts
    for marker in ("site-packages", "dist-packages", "src"):
        if marker in parts[:-1]:
            index = len(parts) - 1 - parts[::-1].index(marker)
            top = parts[index + 1].removesuffix(".py")
            return ours.get(top, top)
    if STDLIB.search(filename):
        return STDLIB_OWNER
    return UNKNOWN


def label(name: str, ours: Mapping[str, str]) -> str:
    """`ours: core/ (smplcore)` for our packages, the import name for dependencies."""
    for package, owner_label in ours.items():
        if owner_label == name:
            return f"{owner_label} ({package})"
    return name


def profile_command(
    module_and_args: Sequence[str],
    *,
    cwd: Path,
    env: Mapping[str, str],
    output: Path,
) -> list[str]:
    """Run `python -m MODULE ARGS` under cProfile and summarise where its wall time went.

    The raw profile is left at `output` (kept with --keep) for `python -m pstats` or snakeviz.
    """
    output.parent.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    profiler = [sys.executable, "-m", "cProfile", "-o", str(output), "-m"]
    run([*profiler, *module_and_args], cwd=cwd, env=env)
    wall = time.perf_counter() - started
    return [
        f"profile: {output} (kept with --keep)",
        *summarize_pstats(pstats.Stats(str(output)), wall, {}),
    ]


def summarize_pstats(stats: pstats.Stats, wall: float, ours: Mapping[str, str]) -> list[str]:
    """Self time by owner, then the functions with the most self and cumulative time."""
    entries = stats.stats  # type: ignore[attr-defined]
    by_owner: Counter[str] = Counter()
    functions: list[tuple[float, float, str, str]] = []
    for (filename, line, name), (_, _, self_time, cumulative, _) in entries.items():
        who = owner(filename, ours)
        by_owner[who] += self_time
        where = name if who == BUILTIN else f"{name} ({_short(filename)}:{line})"
        functions.append((self_time, cumulative, who, where))
    total = sum(by_owner.values()) or 1.0
    lines = [f"wall time under the profiler {wall:.2f} s; profiled time {total:.2f} s", ""]
    lines.append("self time by owner (C builtins include waiting on child processes: git, uv):")
    lines += [
        f"  {seconds:7.3f} s  {100 * seconds / total:5.1f} %  {label(who, ours)}"
        for who, seconds in by_owner.most_common(10)
    ]
    lines.append("functions with the most self time:")
    lines += [
        f"  {self_time:7.3f} s  {who:<14} {where}"
        for self_time, _, who, where in sorted(functions, reverse=True)[:12]
    ]
    lines.append("functions with the most cumulative time (outside the standard library):")
    inclusive = sorted(
        (item for item in functions if item[2] not in (STDLIB_OWNER, BUILTIN)),
        key=lambda item: item[1],
        reverse=True,
    )
    lines += [
        f"  {cumulative:7.3f} s  {who:<14} {where}" for _, cumulative, who, where in inclusive[:15]
    ]
    return lines


def _short(filename: str) -> str:
    """The path from the package folder on (site-packages/, src/ and the stdlib folder dropped)."""
    for pattern in (r".*/(?:site|dist)-packages/", r".*/src/", r".*/lib/python3\.\d+/"):
        shortened = re.sub(pattern, "", filename, count=1)
        if shortened != filename:
            return shortened
    return filename


FRAME = re.compile(r"^(?P<function>.*) \((?P<file>.*?)(?::(?P<line>\d+))?\)$")


class StackProfile:
    """py-spy's raw (collapsed) stacks, charged to owners and functions."""

    def __init__(self, text: str, ours: Mapping[str, str]) -> None:
        self.by_owner: Counter[str] = Counter()
        self.leaves: Counter[str] = Counter()
        self.ours_inclusive: Counter[str] = Counter()
        self.ours_own: Counter[str] = Counter()
        self.samples = 0
        for row in text.splitlines():
            stack, _, count_text = row.rpartition(" ")
            if not stack or not count_text.isdigit():
                continue
            count = int(count_text)
            frames = [_parse_frame(frame, ours) for frame in stack.split(";")]
            self.samples += count
            attributed = _attributed_frame(frames)
            self.by_owner[attributed[1]] += count
            if attributed[1] in ours.values():
                self.ours_own[f"{attributed[1]} {attributed[0]}"] += count
            function, who = frames[-1][0], frames[-1][1]
            self.leaves[f"{who:<16} {function}"] += count
            for ours_frame in {
                f"{who} {function}" for function, who in frames if who in ours.values()
            }:
                self.ours_inclusive[ours_frame] += count


def _parse_frame(frame: str, ours: Mapping[str, str]) -> tuple[str, str]:
    match = FRAME.match(frame)
    if match is None:
        return frame, UNKNOWN
    filename = match.group("file")
    where = f"{match.group('function')} ({_short(filename)}:{match.group('line') or '?'})"
    return where, owner(filename, ours)


def _attributed_frame(frames: Sequence[tuple[str, str]]) -> tuple[str, str]:
    """The innermost frame that belongs to a package (not stdlib, not unknown): who pays."""
    for frame in reversed(frames):
        if frame[1] not in (STDLIB_OWNER, BUILTIN, UNKNOWN):
            return frame
    return frames[-1] if frames else ("?", UNKNOWN)


def pyspy_problem() -> str | None:
    """None when `uv tool run py-spy` works here; else why not (the profile is then skipped)."""
    result = run([*PYSPY, "--version"], check=False, timeout=300)
    if result.returncode != 0:
        return f"py-spy is not available through `uv tool run`: {result.stderr.strip()[-500:]}"
    return None


def profile_server_under_load(
    pids: Mapping[str, int],
    drive: Callable[[str, int], float],
    *,
    seconds: int,
    output_dir: Path,
    ours: Mapping[str, str],
) -> list[str]:
    """Sample each server with py-spy while `drive` loads it; compare the cost per request.

    `drive(name, seconds)` loads the server of that name and returns its CPU time per request
    (from /proc) during the run; py-spy's
    non-idle samples split it by owner. The difference between the service and the bare app is
    the price of our stack, owner by owner.
    """
    problem = pyspy_problem()
    if problem:
        return [problem]
    output_dir.mkdir(parents=True, exist_ok=True)
    profiles: dict[str, StackProfile] = {}
    cpu_per_request: dict[str, float] = {}
    for name, pid in pids.items():
        raw = output_dir / f"{name}.collapsed.txt"
        args = [*PYSPY, "record", "--pid", str(pid), "--duration", str(seconds + 2)]
        args += ["--rate", str(PYSPY_RATE), "--format", "raw", "--full-filenames", "--nonblocking"]
        args += ["--output", str(raw)]
        with (output_dir / f"{name}.py-spy.log").open("w") as log:
            spy = subprocess.Popen(args, env=tool_env(), stdout=log, stderr=subprocess.STDOUT)  # noqa: S603
            try:
                time.sleep(1.0)  # attach before the load starts
                cpu_per_request[name] = drive(name, seconds)
                spy.wait(timeout=seconds + 60)
            finally:
                if spy.poll() is None:
                    spy.kill()
                    spy.wait(timeout=10)
        if not raw.exists():
            return [f"py-spy wrote no profile for {name}: see {output_dir / f'{name}.py-spy.log'}"]
        profiles[name] = StackProfile(raw.read_text(), ours)
    return _compare(profiles, cpu_per_request, ours, output_dir)


def _compare(
    profiles: Mapping[str, StackProfile],
    cpu_per_request: Mapping[str, float],
    ours: Mapping[str, str],
    output_dir: Path,
) -> list[str]:
    def per_request(samples: int, name: str) -> float:
        """Microseconds of CPU per request spent where these samples were taken."""
        return cpu_per_request[name] * samples / max(profiles[name].samples, 1)

    names = list(profiles)
    lines = [
        "CPU time per request by owner, in microseconds (" + " vs ".join(names) + "); "
        f"stacks in {output_dir} (kept with --keep)",
    ]
    owners = Counter[str]()
    for profile in profiles.values():
        owners.update(profile.by_owner)
    for who, _ in owners.most_common(14):
        cells = "  ".join(
            f"{per_request(profiles[name].by_owner[who], name):8.1f}" for name in names
        )
        lines.append(f"  {cells}  {label(who, ours)}")
    totals = "  ".join(f"{per_request(profiles[name].samples, name):8.1f}" for name in names)
    lines.append(f"  {totals}  total")
    first = names[0]
    lines.append(f"{first}: innermost functions, microseconds per request:")
    lines += [
        f"  {per_request(count, first):8.1f}  {where}"
        for where, count in profiles[first].leaves.most_common(12)
    ]
    lines.append(
        f"{first}: our lines, own time (with the stdlib and C calls they make), us per request:"
    )
    lines += [
        f"  {per_request(count, first):8.1f}  {where}"
        for where, count in profiles[first].ours_own.most_common(12)
    ]
    lines.append(f"{first}: our lines, inclusive (everything they call), us per request:")
    lines += [
        f"  {per_request(count, first):8.1f}  {where}"
        for where, count in profiles[first].ours_inclusive.most_common(12)
    ]
    return lines
