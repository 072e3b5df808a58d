"""Post-copy task: make a freshly generated service ready to use.

Copier runs this in the new service's folder after `copier copy` only (copier.yml guards it with
`_copier_operation`). It never fails the copy: Copier deletes a new destination when a task fails,
and a laptop not yet logged in to the private index must still get its service. What could not be
done is printed with the command to run later.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

PROJECT = Path.cwd()
FALLBACK_IDENTITY = ["-c", "user.name=Service Template", "-c", "user.email=noreply@example.invalid"]


def quiet(args: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, cwd=PROJECT, capture_output=True, text=True, check=False)  # noqa: S603


def inside_git_work_tree() -> bool:
    return quiet(["git", "rev-parse", "--is-inside-work-tree"]).stdout.strip() == "true"


def lock_dependencies() -> bool:
    """`uv lock`, resolving the core from the private index; False (with advice) when it can't."""
    if shutil.which("uv") is None:
        print("uv is not installed: install it (https://docs.astral.sh/uv/), then run `uv lock`.")
        return False
    result = quiet(["uv", "lock", "--quiet"])
    if result.returncode != 0:
        print(
            "Could not lock the dependencies (is the private index reachable, and are "
            "UV_INDEX_PRIVATE_USERNAME / UV_INDEX_PRIVATE_PASSWORD set?). uv said:\n"
            f"{result.stderr.strip()}\n"
            "Once logged in to the index, run `uv lock` and commit uv.lock.",
        )
        return False
    return True


def first_commit() -> None:
    has_identity = quiet(["git", "config", "user.email"]).returncode == 0
    identity = [] if has_identity else FALLBACK_IDENTITY
    quiet(["git", "add", "--all"])
    message = "Generate from the service template"
    result = quiet(["git", *identity, "commit", "--quiet", "--no-verify", "-m", message])
    if result.returncode != 0:
        print(
            f"Could not make the first commit; commit by hand. git said:\n{result.stderr.strip()}"
        )


def main() -> int:
    new_repository = not inside_git_work_tree()
    if new_repository:
        quiet(["git", "init", "--quiet", "--initial-branch=main"])
    locked = lock_dependencies()
    if new_repository:
        first_commit()
    else:
        print("The service is inside an existing git repository: review and commit it yourself.")
    next_steps = "make install && make check" if locked else "uv lock && make install && make check"
    print(f"Service ready in {PROJECT}. Next: {next_steps}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
