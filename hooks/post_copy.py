"""Post-copy task: check the new service's answers, then make it ready to use.

Copier runs this in the new service's folder after `copier copy` only (copier.yml guards it with
`_copier_operation`), with the interpreter Copier runs on, so only the standard library, Jinja and
PyYAML (Copier's own dependencies) are at hand. It fails the copy only for an answer that would
give a broken service, a check Copier's validators cannot make before writing (they cannot reach
the interpreter): Copier then deletes the folder it created. Everything else never fails the copy:
a laptop not yet logged in to the private index must still get its service, so what could not be
done is printed with the command to run later, and a mistake that leaves a working service (a
placeholder answer, stray files, a service inside another repository) is a WARNING that says what
to do.

    post_copy.py --answers-file=.copier-answers.yml
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import jinja2
import yaml

PROJECT = Path.cwd()
TEMPLATE_REPOSITORY = Path(__file__).resolve().parent.parent
FALLBACK_IDENTITY = ["-c", "user.name=Service Template", "-c", "user.email=noreply@example.invalid"]
PLACEHOLDERS = {"aws_account_id": "123456789012", "owner_team": "platform"}
"""Defaults of copier.yml that only stand in for a real answer."""
LISTED_STRAY_FILES = 10


def quiet(args: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, cwd=PROJECT, capture_output=True, text=True, check=False)  # noqa: S603


def warn(message: str) -> None:
    print(f"WARNING: {message}", file=sys.stderr)


def shadowed_module(package_name: str) -> str | None:
    """Why the package name cannot be used, if it is a standard library module's name.

    Read from the running interpreter, so the list is never out of date.
    """
    if package_name in sys.stdlib_module_names:
        return (
            f'package_name "{package_name}" would shadow the standard library module of that '
            "name. Copy again with another name: --data package_name=NAME."
        )
    return None


def warn_about_placeholders(answers: dict[str, Any]) -> None:
    for question, placeholder in PLACEHOLDERS.items():
        if answers.get(question) == placeholder:
            warn(
                f"{question} is the template's placeholder {placeholder!r}, not a real answer. "
                f"Set it with `make reconfigure SET={question}=VALUE` and commit the result."
            )


def warn_about_template_shorthand(answers: dict[str, Any]) -> None:
    """Copier records the template as given; `gh:`/`gl:` is its own shorthand, which git and
    Renovate's copier manager (it looks the template's tags up with git) cannot resolve."""
    source = str(answers.get("_src_path", ""))
    hosts = {"gh:": "https://github.com/", "gl:": "https://gitlab.com/"}
    for shorthand, host in hosts.items():
        if source.startswith(shorthand):
            url = host + source.removeprefix(shorthand).removesuffix(".git") + ".git"
            warn(
                f"the template is recorded as {source!r}, a shorthand only Copier understands: "
                f"Renovate cannot update this service with it. Write `_src_path: {url}` in "
                ".copier-answers.yml (the same template) and commit it, or copy with that URL."
            )


def top_level() -> Path | None:
    """The root of the git work tree the service is in; None outside one."""
    result = quiet(["git", "rev-parse", "--show-toplevel"])
    return Path(result.stdout.strip()).resolve() if result.returncode == 0 else None


def generated_paths(answers: dict[str, Any], answers_file: str) -> set[str]:
    """The files `copier copy` wrote for these answers: the template's paths, rendered."""
    environment = jinja2.Environment(autoescape=False)  # noqa: S701 - file names, not HTML
    context = {**answers, "_copier_conf": {"answers_file": answers_file}}
    # copier.yml's _subdirectory: a workspace's root has a tree of its own.
    template_root = TEMPLATE_REPOSITORY / (
        "workspace" if answers.get("layout") == "workspace" else "template"
    )
    paths = set()
    for source in template_root.rglob("*"):
        if not source.is_file() or "__pycache__" in source.parts:
            continue
        parts = [
            environment.from_string(part).render(context) if "{" in part else part
            for part in source.relative_to(template_root).parts
        ]
        if all(parts):
            paths.add("/".join(parts).removesuffix(".jinja"))
    return paths


def stray_files(generated: set[str]) -> list[str]:
    """Files of the folder that the copy did not write: they were there before."""
    return sorted(
        str(path.relative_to(PROJECT))
        for path in PROJECT.rglob("*")
        if path.is_file()
        and ".git" not in path.relative_to(PROJECT).parts
        and str(path.relative_to(PROJECT)) not in generated
    )


def lock_dependencies() -> bool:
    """`uv lock`, from uv's cache when it holds everything, else from the indexes (the core from
    the private one); False (with advice) when it can't. Both resolve the same constraints."""
    if shutil.which("uv") is None:
        print("uv is not installed: install it (https://docs.astral.sh/uv/), then run `uv lock`.")
        return False
    if quiet(["uv", "lock", "--quiet", "--offline"]).returncode == 0:
        return True
    result = quiet(["uv", "lock", "--quiet"])
    if result.returncode != 0:
        print(
            "Could not lock the dependencies (is the private index reachable, and are "
            "UV_INDEX_PRIVATE_USERNAME / UV_INDEX_PRIVATE_PASSWORD set?). uv said:\n"
            f"{result.stderr.strip()}\n"
            "Once logged in to the index, run `uv lock` and commit uv.lock. No private index "
            "(trying the template out)? In a clone of the template, `make try` builds the core "
            "into a local index and prints the copy command that uses it.",
        )
        return False
    return True


def first_commit(stray: list[str]) -> None:
    """Commit the service, less the files that were in the folder before the copy."""
    has_identity = quiet(["git", "config", "user.email"]).returncode == 0
    identity = [] if has_identity else FALLBACK_IDENTITY
    quiet(["git", "add", "--all"])
    if stray:
        quiet(["git", "rm", "--cached", "--quiet", "--ignore-unmatch", "--", *stray])
    message = "Generate from the service template"
    result = quiet(["git", *identity, "commit", "--quiet", "--no-verify", "-m", message])
    if result.returncode != 0:
        print(
            f"Could not make the first commit; commit by hand. git said:\n{result.stderr.strip()}"
        )


def warn_about_stray_files(stray: list[str]) -> None:
    listed = ", ".join(stray[:LISTED_STRAY_FILES])
    more = f" and {len(stray) - LISTED_STRAY_FILES} more" if len(stray) > LISTED_STRAY_FILES else ""
    warn(
        f"the folder already held files the template does not generate: {listed}{more}. They are "
        "not in the first commit: `git add` those that belong to the service, delete the others."
    )


def warn_about_enclosing_repository(root: Path) -> None:
    folder = PROJECT.relative_to(root)
    warn(
        f"the service is inside the git repository {root}, in {folder}/. GitHub runs only the "
        f"workflows of {root}/.github/workflows, never those of {folder}/.github/workflows: move "
        f"them there (with `working-directory: {folder}` on their steps), or generate the service "
        "into a folder of its own, outside any repository; review and commit it yourself."
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--answers-file", default=".copier-answers.yml")
    args = parser.parse_args(argv)
    answers: dict[str, Any] = yaml.safe_load((PROJECT / args.answers_file).read_text())
    problem = "package_name" in answers and shadowed_module(str(answers["package_name"]))
    if problem:
        print(problem, file=sys.stderr)
        return 1
    if answers.get("workspace_member"):
        # The workspace's `make service` locks at the root, where the only lock is.
        print(f"Service ready in {PROJECT}.")
        return 0
    warn_about_placeholders(answers)
    warn_about_template_shorthand(answers)
    root = top_level()
    if root is None:
        quiet(["git", "init", "--quiet", "--initial-branch=main"])
        stray = stray_files(generated_paths(answers, args.answers_file))
        locked = lock_dependencies()
        first_commit(stray)
        if stray:
            warn_about_stray_files(stray)
    else:
        locked = lock_dependencies()
        if root == PROJECT.resolve():
            print("The folder is a git repository already: review and commit the service yourself.")
        else:
            warn_about_enclosing_repository(root)
    if answers.get("layout") == "workspace":
        next_steps = "make service NAME=..." if locked else "uv lock, then make service NAME=..."
        print(f"Workspace ready in {PROJECT}. Next: {next_steps}")
        return 0
    next_steps = "make install && make check" if locked else "uv lock && make install && make check"
    print(f"Service ready in {PROJECT}. Next: {next_steps}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
