"""A workspace's isolated members: the members with a uv.lock of their own, which the workspace's
root leaves out of its one lock (README: Where one lock can't hold). `make lint` refuses any other
lock below the root, so a member's own lock is the mark of one."""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import PurePosixPath

OWN_LOCK = re.compile(r"(projects|lib)/[^/]+/uv\.lock")


def isolated_members(files: Iterable[str]) -> list[str]:
    """The folders (relative to the root) of the workspace's members that have their own lock."""
    return sorted(str(PurePosixPath(path).parent) for path in files if OWN_LOCK.fullmatch(path))
