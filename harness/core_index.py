"""A local package index holding the reference core, as CodeArtifact would serve it.

The index is a static PEP 503 ("simple API") tree read through a file:// URL: uv speaks the same
protocol to it as to CodeArtifact, and the generated service's explicit-index configuration is
exercised unchanged.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

from fleet.candidate import add_to_index
from harness.commands import REPO_ROOT, run

CORE_PROJECT = REPO_ROOT / "core"


def build_core(out_dir: Path, project: Path = CORE_PROJECT) -> list[Path]:
    """Build the core's wheel and sdist with `uv build`, as the release workflow does."""
    out_dir.mkdir(parents=True, exist_ok=True)
    run(["uv", "build", "--quiet", "--out-dir", out_dir, project])
    return sorted(out_dir.glob("*.whl")) + sorted(out_dir.glob("*.tar.gz"))


def publish_core(index_root: Path, work_dir: Path, distribution: str = "smplkit-core") -> str:
    """Build the core and publish it to a local index; return the index's file:// URL."""
    add_to_index(index_root, distribution, build_core(work_dir / "dist"))
    return index_root.resolve().as_uri()


def core_variant(
    work_dir: Path, version: str, replacements: dict[str, tuple[str, str]] | None = None
) -> Path:
    """A copy of the core at another version, with text replaced in some of its files
    (`{"src/smplcore/app.py": (old, new)}`): a release the tests can publish next to others."""
    project = work_dir / f"core-{version}"
    shutil.copytree(
        CORE_PROJECT,
        project,
        ignore=shutil.ignore_patterns(".venv", "dist", "__pycache__", "*_cache", ".coverage"),
    )
    edits = {
        "pyproject.toml": (
            _version_line(CORE_PROJECT / "pyproject.toml"),
            f'version = "{version}"',
        ),
        **(replacements or {}),
    }
    for relative, (old, new) in edits.items():
        path = project / relative
        text = path.read_text()
        if old not in text:
            raise ValueError(f"{relative} of the core does not contain {old!r}")
        path.write_text(text.replace(old, new, 1))
    return project


def publish_core_versions(
    index_root: Path,
    work_dir: Path,
    versions: dict[str, dict[str, tuple[str, str]]],
    distribution: str = "smplkit-core",
) -> str:
    """Publish several versions of the core (each with its replacements, see `core_variant`) to
    one local index; return the index's file:// URL."""
    for version, replacements in versions.items():
        project = core_variant(work_dir, version, replacements)
        add_to_index(index_root, distribution, build_core(work_dir / f"dist-{version}", project))
    return index_root.resolve().as_uri()


def _version_line(pyproject: Path) -> str:
    match = re.search(r'^version = "[^"]+"$', pyproject.read_text(), re.MULTILINE)
    if match is None:
        raise ValueError(f"{pyproject} has no version line")
    return match[0]
