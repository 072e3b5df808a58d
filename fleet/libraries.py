"""The libraries a service installs from its private index besides the core (a workspace's
libraries, published with `make publish-lib`): the version its lock holds and the newest its range
allows, for the report's column."""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

FROM_REGISTRY = re.compile(
    r'^\[\[package\]\]\nname = "([^"]+)"\nversion = "([^"]+)"\nsource = \{ registry = "([^"]+)" \}',
    re.MULTILINE,
)
"""A locked package's name, version and index (uv writes them first, in this order)."""


@dataclass
class Library:
    name: str
    allowed: str
    """The range the service declares."""
    locked: str
    newest: str | None = None

    @property
    def behind(self) -> bool | None:
        return None if self.newest is None else Version(self.locked) < Version(self.newest)


def same_index(registry: str, index_url: str) -> bool:
    """Whether a lock's registry is the index (uv writes a file:// index as its path)."""

    def plain(url: str) -> str:
        return url.removeprefix("file://").rstrip("/")

    return plain(registry) == plain(index_url)


def declared(pyproject: str | None) -> dict[str, str]:
    """The service's dependencies: name -> the range it declares."""
    try:
        project = tomllib.loads(pyproject or "").get("project", {})
    except tomllib.TOMLDecodeError:
        return {}
    found: dict[str, str] = {}
    for line in project.get("dependencies", []):
        try:
            requirement = Requirement(line)
        except InvalidRequirement:
            continue
        found[canonicalize_name(requirement.name)] = str(requirement.specifier)
    return found


def private_libraries(lock: str, pyproject: str | None, index_url: str, core: str) -> list[Library]:
    """The packages the service declares and locks from its private index, the core aside."""
    wanted = declared(pyproject)
    return [
        Library(name, wanted[name], version)
        for name, version, registry in FROM_REGISTRY.findall(lock)
        if name in wanted and name != canonicalize_name(core) and same_index(registry, index_url)
    ]
