"""The core as a candidate for `fleet test-core`: its source (a folder, or a git reference of the
repository holding it) built into a wheel whose version is the core's with a local label
(`1.3.0+pr123`), served from a throwaway PEP 503 index of its own.

A local version never leaves that index: PyPI refuses local versions, the core's release publishes
only core/pyproject.toml's own version, and a service's `make check` refuses a lock holding anything
but a final release (`core-release-guard`), so a lock moved to a candidate cannot ship.
"""

from __future__ import annotations

import io
import re
import shutil
import tarfile
from dataclasses import dataclass
from pathlib import Path

import tomlkit
from packaging.version import InvalidVersion, Version

from fleet.commands import CommandError, checked, git, run_bytes
from fleet.simple_index import add_to_index

LOCAL_LABEL = re.compile(r"^[a-z0-9]+(\.[a-z0-9]+)*$")
"""PEP 440's local version label, lowercase: letters and digits in dot-separated parts."""
NOT_SOURCE = shutil.ignore_patterns(
    ".venv", "dist", "build", "__pycache__", "*_cache", ".coverage", "*.egg-info"
)


class CandidateError(Exception):
    """The candidate cannot be built; the message says why."""


@dataclass(frozen=True)
class Candidate:
    name: str
    """The core's distribution name."""
    version: str
    wheel: Path
    index_url: str
    """A file:// PEP 503 index holding the wheel alone."""


def default_label(core: Path) -> str:
    """`dev.<commit>` in a git checkout (the commit the candidate's tree started from), else
    `dev`."""
    try:
        return "dev." + git("rev-parse", "--short", "HEAD", cwd=core).strip()
    except CommandError:
        return "dev"


def source_tree(core: Path, ref: str | None, destination: Path) -> Path:
    """The core's source: the folder as it is, or (with `ref`) the folder at that git reference
    of the repository holding it, without its environments and build output."""
    if ref is None:
        if not (core / "pyproject.toml").is_file():
            raise CandidateError(f"{core} holds no pyproject.toml: give the core's folder (--core)")
        shutil.copytree(core, destination, ignore=NOT_SOURCE)
        return destination
    try:
        top = Path(git("rev-parse", "--show-toplevel", cwd=core).strip())
        inside = core.resolve().relative_to(top.resolve()).as_posix()
        archive = run_bytes(["git", "archive", "--format=tar", f"{ref}:{inside}"], top, b"")
    except (CommandError, OSError) as error:
        raise CandidateError(f"the core at {ref}: {error}") from error
    destination.mkdir(parents=True)
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(destination, filter="data")
    return destination


def build_candidate(core: Path, label: str, scratch: Path, ref: str | None = None) -> Candidate:
    """The core (at `ref`, or as its folder is) built as `<its version>+<label>` and put alone
    on a new index under `scratch`."""
    if not LOCAL_LABEL.match(label):
        raise CandidateError(
            f"the label {label!r} is not a local version label: lowercase letters and digits, "
            "in parts joined by dots (e.g. pr123, dev.1a2b3c4)"
        )
    project = source_tree(core, ref, scratch / "core")
    pyproject = project / "pyproject.toml"
    try:
        document = tomlkit.parse(pyproject.read_text())
        table = document["project"]
        name, version = str(table["name"]), Version(str(table["version"]))
    except (OSError, KeyError, InvalidVersion, tomlkit.exceptions.ParseError) as error:
        raise CandidateError(f"{pyproject}: no [project] name and version ({error})") from error
    if version.local:
        raise CandidateError(f"the core's version {version} has a local label already")
    candidate = f"{version}+{label}"
    table["version"] = candidate
    pyproject.write_text(tomlkit.dumps(document))
    dist = scratch / "dist"
    try:
        checked(["uv", "build", "--quiet", "--wheel", "--out-dir", str(dist), str(project)])
    except CommandError as error:
        raise CandidateError(f"uv build of the core failed: {error}") from error
    (wheel,) = dist.glob("*.whl")
    index = scratch / "index"
    add_to_index(index, name, [wheel])
    return Candidate(name, candidate, wheel, index.resolve().as_uri())
