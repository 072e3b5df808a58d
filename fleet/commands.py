"""Running git and gh: never a prompt for credentials, the error as the tool said it."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

QUIET_GIT = {"GIT_TERMINAL_PROMPT": "0", "GIT_ASKPASS": "true", "GCM_INTERACTIVE": "never"}
"""A repository that asks for credentials fails at once instead of waiting for an answer."""


class CommandError(Exception):
    """A command failed; the message is the line of its output that says why (see error_line)."""


def error_line(output: str) -> str:
    """git's own error, its first `fatal:` or `error:` line (the advice that follows it, such as
    "and the repository exists.", says nothing of what went wrong); else the last line."""
    lines = output.strip().splitlines()
    for line in lines:
        if line.startswith(("fatal: ", "error: ")):
            return line.split(": ", 1)[1]
    return lines[-1] if lines else ""


def spawn(
    command: list[str], cwd: Path | None, stdin: bytes | None
) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(  # noqa: S603 - git, gh, uv and copier, with arguments from the fleet
        command,
        cwd=cwd,
        input=stdin,
        capture_output=True,
        check=False,
        env={**os.environ, **QUIET_GIT},
    )


def run(command: list[str], cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    done = spawn(command, cwd, None)
    output, errors = (stream.decode(errors="replace") for stream in (done.stdout, done.stderr))
    return subprocess.CompletedProcess(done.args, done.returncode, output, errors)


def run_bytes(command: list[str], cwd: Path, stdin: bytes) -> bytes:
    """The command's standard output as bytes, given `stdin`; CommandError when it fails."""
    done = spawn(command, cwd, stdin)
    if done.returncode != 0:
        raise CommandError(done.stderr.decode(errors="replace").strip() or f"{command[0]} failed")
    return done.stdout


def checked(command: list[str], cwd: Path | None = None) -> str:
    """The command's standard output; CommandError when it fails."""
    done = run(command, cwd)
    if done.returncode != 0:
        raise CommandError(error_line(done.stderr or done.stdout) or f"{command[0]} failed")
    return done.stdout


def git(*args: str, cwd: Path | None = None) -> str:
    return checked(["git", *args], cwd)
