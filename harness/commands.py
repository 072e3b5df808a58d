"""Running external commands with readable failures."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent


UNINHERITED = frozenset({"VIRTUAL_ENV", "PYTHONDONTWRITEBYTECODE"})
"""Not passed to tools: an outer venv would confuse uv, and without bytecode caches every Python
process (copier, pytest, the services) recompiles everything it imports, several times slower."""


class CommandFailedError(RuntimeError):
    """A command exited non-zero; the message carries its output, so a failure explains itself."""


def tool_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment for tools: this interpreter's scripts first on PATH, so `uv` and `copier`
    are the locked ones, less what UNINHERITED names."""
    env = {key: value for key, value in os.environ.items() if key not in UNINHERITED}
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    env.setdefault("UV_PYTHON_DOWNLOADS", "never")
    env.update(extra or {})
    return env


def run(
    args: Sequence[str | os.PathLike[str]],
    *,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
    check: bool = True,
    timeout: float = 600,
) -> subprocess.CompletedProcess[str]:
    """Run a command, capturing its output; raise CommandFailedError with that output on failure."""
    completed = subprocess.run(  # noqa: S603 - every caller passes a fixed tool and arguments
        [os.fspath(arg) for arg in args],
        cwd=cwd,
        env=tool_env(env),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if check and completed.returncode != 0:
        raise CommandFailedError(
            f"`{' '.join(map(str, args))}` exited {completed.returncode} in {cwd}\n"
            f"--- stdout ---\n{completed.stdout}\n--- stderr ---\n{completed.stderr}"
        )
    return completed


def git(*args: str, cwd: Path) -> str:
    """Run git with a fixed identity, so commits work on machines without a configured user."""
    identity = ["-c", "user.name=Template Tests", "-c", "user.email=template-tests@example.invalid"]
    return run(["git", *identity, *args], cwd=cwd).stdout


def find_python(version: str) -> str | None:
    """An interpreter for `version` ("3.12"), on PATH or installed by pyenv; None when absent.

    The interpreter's own `sys.executable` is returned, never a pyenv shim: uv records the path it
    is given, and a shim's path makes every later `uv run` rebuild the environment.
    """
    candidates = [shutil.which(f"python{version}")]
    pyenv_root = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv"))
    candidates += sorted(map(str, pyenv_root.glob(f"versions/{version}.*/bin/python{version}")))
    for candidate in filter(None, candidates):
        probe = subprocess.run(  # noqa: S603 - a candidate interpreter found above
            [candidate, "-c", "import sys; print('%d.%d' % sys.version_info[:2], sys.executable)"],
            capture_output=True,
            text=True,
            check=False,
        )
        found_version, _, executable = probe.stdout.strip().partition(" ")
        if probe.returncode == 0 and found_version == version and executable:
            return executable
    return None
