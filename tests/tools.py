"""External tools the tests need: present, or a failure that says how to install them."""

from __future__ import annotations

import shutil

import pytest


def require_tool(name: str, install_hint: str) -> str:
    """The tool's path; when missing, a failing test (never a skip) saying how to install it."""
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"`{name}` is not installed; {install_hint}", pytrace=False)
    return path
