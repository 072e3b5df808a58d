"""What the release workflow (.github/workflows/release.yml) asks of the repository.

    release.py notes v1.2.0                    # the CHANGELOG entry of that tag, for the notes
    release.py core-version                    # the core's version, from core/pyproject.toml
    release.py unpublished INDEX_URL FILE...   # those of the built files the index lacks
    release.py core-api [--against REF]        # refuse a breaking API change in a non-major core
    release.py core-candidate core-v1.3.0rc1   # the tag names the core's version, a pre-release

`notes` fails, naming what is wrong, when the tag is not a version `vX.Y.Z` or CHANGELOG.md has no
entry (a heading `## vX.Y.Z - date` followed by text) for it. `unpublished` reads the index's
simple-API pages (HTTP basic credentials from INDEX_USERNAME and INDEX_PASSWORD, when set) and
prints, one a line, the distribution files whose name, version and kind the index does not hold
yet: template and core versions are separate, so a template release publishes the core only when
its version is new, and a publish that stopped half-way is completed without uploading a file
twice. `core-api` compares the core's version with the one at REF (by default the newest `v*` tag
before HEAD: the template's tags carry the core they published): the same version has nothing to
check, a higher major version may break anything, and otherwise griffe (installed; git history
needed) must find no breaking change of the public API between REF and the working tree. The rule
is the one a workspace's libraries are published by: workspace/tools/api_semver.py, shared.
`core-candidate` fails unless the tag is `core-v` followed by the core's version and that version
is a pre-release (aN, bN or rcN): a final core is released with the template. Standard library
only: it runs on the runner's own Python.
"""

from __future__ import annotations

import argparse
import io
import os
import re
import subprocess
import sys
import tarfile
import tempfile
import tomllib
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO_ROOT / "workspace" / "tools"))
from api_semver import ApiBreakError, breaking_changes, check_release  # noqa: E402
from simple_index import IndexUnreadableError, normalized, project_files  # noqa: E402

TAG_PATTERN = re.compile(r"v\d+\.\d+\.\d+")
PRE_RELEASE = re.compile(r"\d+(\.\d+)*(a|b|rc)\d+")
HTTP_NOT_FOUND = 404


class ReleaseError(Exception):
    """The release cannot go on; the message says why."""


def changelog_entry(changelog: str, tag: str) -> str:
    """The text under the heading `## <tag>` of a changelog, up to the next `## ` heading."""
    if not TAG_PATTERN.fullmatch(tag):
        raise ReleaseError(f"tag {tag!r} is not a release version vX.Y.Z (e.g. v1.2.0)")
    heading = re.compile(rf"## {re.escape(tag)}(\s|$)")
    lines = changelog.splitlines()
    start = next((index for index, line in enumerate(lines) if heading.match(line)), None)
    if start is None:
        raise ReleaseError(
            f"CHANGELOG.md has no entry for {tag}: add a heading `## {tag} - YYYY-MM-DD` with the "
            "changes and whether the update runs a migration"
        )
    end = next(
        (index for index in range(start + 1, len(lines)) if lines[index].startswith("## ")),
        len(lines),
    )
    entry = "\n".join(lines[start + 1 : end]).strip()
    if not entry:
        raise ReleaseError(f"the CHANGELOG.md entry for {tag} is empty: say what changed")
    return entry + "\n"


def core_version(pyproject: Path) -> str:
    """The core's version (its own, apart from the template's)."""
    return str(tomllib.loads(pyproject.read_text())["project"]["version"])


def git(*args: str) -> str:
    result = subprocess.run(  # noqa: S603 - git with fixed arguments
        ["git", *args], cwd=REPO_ROOT, capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        raise ReleaseError(f"git {' '.join(args)} failed: {result.stderr.strip()}")
    return result.stdout.strip()


def core_api(against: str | None) -> str:
    """What was checked; ReleaseError when the public API breaks in a release that is not major."""
    reference = against or git("describe", "--tags", "--abbrev=0", "--match", "v*", "HEAD^")
    previous = str(
        tomllib.loads(git("show", f"{reference}:core/pyproject.toml"))["project"]["version"]
    )
    current = core_version(REPO_ROOT / "core" / "pyproject.toml")

    def breaks() -> list[str]:
        with tempfile.TemporaryDirectory() as scratch:
            archive = subprocess.run(  # noqa: S603 - git with fixed arguments
                ["git", "archive", "--format=tar", f"{reference}:core/src"],
                cwd=REPO_ROOT,
                capture_output=True,
                check=True,
            ).stdout
            with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
                tar.extractall(scratch, filter="data")
            return breaking_changes("smplcore", Path(scratch), REPO_ROOT / "core" / "src")

    try:
        return f"against {reference}: {check_release('the core', previous, current, breaks)}"
    except ApiBreakError as error:
        raise ReleaseError(f"against {reference}: {error}") from error


def core_candidate(tag: str, pyproject: Path) -> str:
    """The candidate's version; ReleaseError unless the tag names a pre-release of the core."""
    version = core_version(pyproject)
    if tag != f"core-v{version}":
        raise ReleaseError(f"the tag {tag} does not name the core's version: tag core-v{version}")
    if not PRE_RELEASE.fullmatch(version):
        raise ReleaseError(
            f"the core {version} is not a pre-release (X.Y.ZrcN): a final core is released with "
            "the template, by `make release`"
        )
    return version


def file_key(filename: str) -> tuple[str, str, str] | None:
    """(normalized name, version, wheel tags or "sdist") of a distribution file; None otherwise."""
    if filename.endswith(".whl"):
        name, version, *tags = filename.removesuffix(".whl").split("-")
        return normalized(name), version, "-".join(tags)
    for suffix in (".tar.gz", ".zip"):
        if filename.endswith(suffix):
            name, _, version = filename.removesuffix(suffix).rpartition("-")
            return normalized(name), version, "sdist"
    return None


def unpublished(index_url: str, files: list[Path]) -> list[Path]:
    """The files whose name, version and kind the index does not hold yet."""
    keys = {}
    for file in files:
        key = file_key(file.name)
        if key is None:
            raise ReleaseError(f"{file} is not a wheel or a source distribution")
        keys[file] = key
    username, password = os.environ.get("INDEX_USERNAME"), os.environ.get("INDEX_PASSWORD")
    credentials = (username, password) if username and password else None
    published: set[tuple[str, str, str] | None] = set()
    for distribution in sorted({name for name, _, _ in keys.values()}):
        try:
            on_index = project_files(index_url, distribution, credentials)
        except IndexUnreadableError as error:
            raise ReleaseError(str(error)) from error
        published |= {file_key(name) for name in on_index}
    return [file for file in files if keys[file] not in published]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    commands = parser.add_subparsers(dest="command", required=True)
    notes = commands.add_parser("notes", help="print the CHANGELOG entry of a tag")
    notes.add_argument("tag")
    notes.add_argument("--changelog", type=Path, default=REPO_ROOT / "CHANGELOG.md")
    version = commands.add_parser("core-version", help="print the core's version")
    version.add_argument("--pyproject", type=Path, default=REPO_ROOT / "core" / "pyproject.toml")
    missing = commands.add_parser("unpublished", help="print the files the index lacks")
    missing.add_argument("index_url", help="the index's simple-API URL")
    missing.add_argument("files", type=Path, nargs="+", help="built wheels and sdists")
    api = commands.add_parser("core-api", help="refuse a breaking API change in a non-major core")
    api.add_argument("--against", help="the previous release's git reference")
    candidate = commands.add_parser("core-candidate", help="check a release candidate's tag")
    candidate.add_argument("tag")
    candidate.add_argument("--pyproject", type=Path, default=REPO_ROOT / "core" / "pyproject.toml")
    args = parser.parse_args(argv)
    try:
        if args.command == "notes":
            sys.stdout.write(changelog_entry(args.changelog.read_text(), args.tag))
        elif args.command == "core-version":
            print(core_version(args.pyproject))
        elif args.command == "core-api":
            print(f"release: {core_api(args.against)}")
        elif args.command == "core-candidate":
            candidate_version = core_candidate(args.tag, args.pyproject)
            print(f"release: the core {candidate_version} is a release candidate")
        else:
            for file in unpublished(args.index_url, args.files):
                print(file)
    except ReleaseError as error:
        print(f"release: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
