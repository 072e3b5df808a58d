"""Isolating a service whose dependencies conflict with the workspace's single lock (README: Where
one lock can't hold): `make isolate SERVICE=legacy`.

The root's `[tool.uv.workspace] exclude` leaves the service out of the uv workspace, the one
declaration every tool reads (`tools/affected.py`'s isolated_members). The service gets a lock of
its own, resolved with the sources the root gives every member (the core from the private index)
and the workspace libraries it uses as path dependencies, built and installed as packages
(`editable = false`): never a copy. Every other lock below the root stays refused by `make lint`.
"""

from __future__ import annotations

import json
import re
import tomllib
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from affected import isolated_members

BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")


class IsolationError(Exception):
    """The service cannot be isolated; the message says why."""


def toml_key(name: str) -> str:
    return name if BARE_KEY.match(name) else json.dumps(name)


def inline_table(values: Mapping[str, object]) -> str:
    return "{ " + ", ".join(f"{key} = {json.dumps(value)}" for key, value in values.items()) + " }"


def without_table(text: str, header: str) -> str:
    """The TOML text less the table `[header]` (its header line up to the next table's)."""
    lines, kept, inside = text.splitlines(keepends=True), [], False
    for line in lines:
        if line.startswith("["):
            inside = line.strip() == f"[{header}]"
        if not inside:
            kept.append(line)
    return "".join(kept)


def excluded(root_text: str, folder: str) -> str:
    """The root pyproject.toml's text with `folder` in `[tool.uv.workspace] exclude`."""
    found = re.search(r"^exclude = (\[.*\])$", root_text, re.MULTILINE)
    if found:
        try:
            folders = [*tomllib.loads(f"exclude = {found[1]}")["exclude"], folder]
        except tomllib.TOMLDecodeError:
            return root_text  # refused by the caller's check, nothing written
        return root_text.replace(found[0], f"exclude = {json.dumps(folders)}", 1)
    members = re.search(r"^members = .*$", root_text, re.MULTILINE)
    if members is None:
        return root_text
    comment = "# Isolated members, each with its own uv.lock (make isolate)."
    line = f"{comment}\nexclude = {json.dumps([folder])}"
    return root_text.replace(members[0], f"{members[0]}\n{line}", 1)


def own_sources(
    root: Path, folder: Path, members: Mapping[str, Path], root_uv: Mapping[str, Any]
) -> tuple[dict[str, dict[str, object]], list[dict[str, Any]]]:
    """The sources the service resolves on its own (the root's and its own, workspace members as
    non-editable paths) and the indexes they name."""
    member_uv = tomllib.loads((folder / "pyproject.toml").read_text()).get("tool", {}).get("uv", {})
    sources: dict[str, dict[str, object]] = {}
    for name, source in {**root_uv.get("sources", {}), **member_uv.get("sources", {})}.items():
        if source.get("workspace") and name in members:
            up = [".."] * len(folder.relative_to(root).parts)
            path = Path(*up, members[name].relative_to(root)).as_posix()
            sources[name] = {"path": path, "editable": False}
        else:
            sources[name] = dict(source)
    named = {str(source.get("index")) for source in sources.values()}
    indexes = [index for index in root_uv.get("index", []) if index.get("name") in named]
    return sources, indexes


def isolate(
    name: str, root: Path, members: Mapping[str, Path], run_or_fail: Callable[..., None]
) -> None:
    """The service `name` out of the workspace's lock, with a lock of its own (`run_or_fail`
    runs uv)."""
    folder = members.get(name)
    if folder is None or not folder.is_relative_to(root / "projects"):
        raise IsolationError(
            f"{name!r} is not a service of projects/: only a service can be isolated (a library "
            "every service shares stays under the one lock)."
        )
    relative = folder.relative_to(root).as_posix()
    if relative in isolated_members(root):
        raise IsolationError(
            f"{relative} is isolated already: `cd {relative} && uv lock` relocks it."
        )
    root_pyproject = root / "pyproject.toml"
    root_text = root_pyproject.read_text()
    new_root = excluded(root_text, relative)
    try:
        workspace = tomllib.loads(new_root).get("tool", {}).get("uv", {}).get("workspace", {})
    except tomllib.TOMLDecodeError:
        workspace = {}
    if relative not in workspace.get("exclude", []):
        raise IsolationError(
            f"Could not add {relative!r} to [tool.uv.workspace] exclude in pyproject.toml: add it "
            "by hand, then `uv lock` in the service's folder and at the root."
        )
    root_uv = tomllib.loads(root_text).get("tool", {}).get("uv", {})
    sources, indexes = own_sources(root, folder, members, root_uv)
    pyproject = folder / "pyproject.toml"
    text = without_table(pyproject.read_text(), "tool.uv.sources").rstrip("\n") + "\n"
    text += (
        "\n# Isolated from the workspace's lock (make isolate): what the root gives every member.\n"
    )
    for index in indexes:
        text += "\n[[tool.uv.index]]\n" + "".join(
            f"{key} = {json.dumps(value)}\n" for key, value in index.items()
        )
    text += "\n[tool.uv.sources]\n" + "".join(
        f"{toml_key(package)} = {inline_table(source)}\n" for package, source in sources.items()
    )
    pyproject.write_text(text)
    root_pyproject.write_text(new_root)
    run_or_fail(["uv", "lock"], cwd=folder)
    run_or_fail(["uv", "lock"])
    print(f"{relative} is isolated: its own uv.lock; `make lint` lists it as the exception.")
