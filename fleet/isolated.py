"""A workspace's isolated members: those its root pyproject.toml leaves out of the uv workspace
(`[tool.uv.workspace] exclude`), each with a lock of its own (README: Where one lock can't hold)."""

from __future__ import annotations

import fnmatch
import tomllib
from collections.abc import Iterable
from pathlib import PurePosixPath


def isolated_members(root_pyproject: str | None, files: Iterable[str]) -> list[str]:
    """The folders (relative to the root) of the members the root leaves out of its workspace,
    among the folders of `files` that hold a pyproject.toml."""
    try:
        workspace = tomllib.loads(root_pyproject or "").get("tool", {}).get("uv", {})
    except tomllib.TOMLDecodeError:
        return []
    patterns = [
        str(pattern).rstrip("/") for pattern in workspace.get("workspace", {}).get("exclude", [])
    ]
    projects = {
        str(PurePosixPath(path).parent)
        for path in files
        if PurePosixPath(path).name == "pyproject.toml"
    }
    return sorted(
        folder
        for folder in projects
        if any(fnmatch.fnmatchcase(folder, pattern) for pattern in patterns)
    )
