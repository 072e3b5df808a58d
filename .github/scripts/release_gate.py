"""The release gate: a template version is tagged only once every variant it renders is green.

    release_gate.py [--repository PATH] [--variant NAME]... [--tag vX.Y.Z]

Renders the template at the repository's HEAD (`copier copy`, with its post-copy task) once per
variant, runs each generated service's own `make check` (lint, type check, tests), and, when every
one passed and a tag is given, tags HEAD. A failing variant is named with its output, and nothing
is tagged: `copier update` offers services only tagged versions, so a broken one never reaches
them. The core comes from a local index built from this repository's core/, as the tests do; the
database variant's tests use TEST_DATABASE_URL, or a throwaway PostgreSQL cluster.

Run from the repository's root with its tooling: `make release VERSION=vX.Y.Z`, or in the release
workflow one variant per job.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from pathlib import Path

from release import ReleaseError, changelog_entry

from harness.commands import REPO_ROOT, find_python, git, run
from harness.core_index import publish_core
from harness.generate import copy
from harness.postgres import postgres_server

VARIANTS: dict[str, dict[str, str]] = {
    "defaults": {},
    "python-3.12": {"python_version": "3.12"},
    "python-3.13": {"python_version": "3.13"},
    "postgres": {"database": "postgres"},
    "workspace": {"layout": "workspace"},
}
"""The answers each variant differs by: the same variants as the CI's generated-service jobs."""

WORKSPACE_MEMBERS = (
    ["make", "service", "NAME=example", "DATABASE=postgres"],
    ["make", "lib", "NAME=shared"],
    ["make", "add-lib", "SERVICE=example", "LIB=shared"],
)
"""What the workspace variant adds before its `make check`: a service with a database that uses a
library. Copier is the one the tooling locks (the workspace's default fetches it with uvx)."""


class GateError(Exception):
    """The release cannot be tagged; the message says why."""


def variant_env(answers: Mapping[str, str], stack: ExitStack) -> dict[str, str]:
    """The environment a variant's `make check` needs: its Python, and a database if it has one."""
    version = answers.get("python_version", "3.11")
    interpreter = find_python(version)
    if interpreter is None:
        raise GateError(f"Python {version} is not installed: install it to check that variant")
    env = {"UV_PYTHON": interpreter}
    if answers.get("database") == "postgres" or answers.get("layout") == "workspace":
        env["TEST_DATABASE_URL"] = stack.enter_context(postgres_server())
    return env


def check_variant(repository: Path, answers: Mapping[str, str], work: Path) -> str | None:
    """The output of the variant's failing step; None when its service is green."""
    with ExitStack() as stack:
        env = variant_env(answers, stack)
        service = work / "service"
        rendered = copy(repository, service, answers, vcs_ref="HEAD", check=False, env=env)
        if rendered.returncode != 0:
            return f"copier copy failed:\n{rendered.stdout}{rendered.stderr}"
        for command in WORKSPACE_MEMBERS if answers.get("layout") == "workspace" else ():
            added = run([*command, "COPIER=copier"], cwd=service, env=env, check=False, timeout=900)
            if added.returncode != 0:
                return f"{' '.join(command)} failed:\n{added.stdout}{added.stderr}"
        checked = run(["make", "check"], cwd=service, env=env, check=False, timeout=1800)
        if checked.returncode != 0:
            return f"make check failed:\n{checked.stdout}{checked.stderr}"
    return None


@contextmanager
def core_index() -> Iterator[str]:
    with tempfile.TemporaryDirectory(prefix="release-gate-index-") as folder:
        yield publish_core(Path(folder) / "simple", Path(folder))


def gate(repository: Path, variants: Sequence[str], tag: str | None) -> None:
    if git("status", "--porcelain", cwd=repository).strip():
        raise GateError(f"{repository} has uncommitted changes: commit them, then release")
    if tag:
        try:
            changelog_entry((repository / "CHANGELOG.md").read_text(), tag)
        except ReleaseError as error:
            raise GateError(str(error)) from error
        if git("tag", "--list", tag, cwd=repository).strip():
            raise GateError(f"{tag} exists already: a released version is never moved")
    failed = []
    with core_index() as index_url:
        for name in variants:
            print(f"release gate: {name}", flush=True)
            with tempfile.TemporaryDirectory(prefix=f"release-gate-{name}-") as work:
                answers = {"core_index_url": index_url, **VARIANTS[name]}
                failure = check_variant(repository, answers, Path(work))
            if failure:
                print(f"release gate: {name} FAILED\n{failure}", file=sys.stderr, flush=True)
                failed.append(name)
    if failed:
        names = ", ".join(failed)
        raise GateError(f"not tagged: the services rendered for {names} fail their checks")
    if tag:
        git("tag", "--annotate", tag, "--message", tag, cwd=repository)
        print(f"release gate: every variant is green; tagged {tag}")
    else:
        print("release gate: every variant is green")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--repository", type=Path, default=REPO_ROOT)
    parser.add_argument(
        "--variant",
        action="append",
        choices=sorted(VARIANTS),
        help="check only these variants (repeatable); default: all",
    )
    parser.add_argument("--tag", help="the version to tag HEAD with once every variant is green")
    args = parser.parse_args(argv)
    try:
        gate(args.repository.resolve(), args.variant or list(VARIANTS), args.tag)
    except GateError as error:
        print(f"release gate: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
