"""Semver of a package's public API: only a major release may break it.

The one rule for the shared core (the template repository's release: `release.py core-api`) and a
workspace's libraries (`make publish-lib`): the public API of the new version is compared with the
last released one by griffe, from their source trees; a break (a public name removed or renamed, a
parameter dropped...) is refused unless the major version goes up.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path


class ApiBreakError(Exception):
    """The public API breaks in a release that is not major; the message names the breaks."""


def major(version: str) -> int:
    return int(version.split(".", 1)[0])


def check_release(
    name: str, previous: str, current: str, breaking_changes: Callable[[], list[str]]
) -> str:
    """What was checked, for `name` going from `previous` to `current`; ApiBreakError when
    `breaking_changes()` finds any and the release is not major."""
    if current == previous:
        return f"{name} is still {current}: nothing to check"
    next_major = major(previous) + 1
    if major(current) >= next_major:
        return f"{name} goes from {previous} to {current}, a major release: it may break its API"
    found = breaking_changes()
    if found:
        raise ApiBreakError(
            f"{name} goes from {previous} to {current}, not a major release, but its public API "
            "breaks:\n" + "".join(f"  {change}\n" for change in found) + "Keep the old names "
            f"working (deprecated), or release {name} as {next_major}.0.0."
        )
    return f"{name} goes from {previous} to {current} without breaking its public API"


def breaking_changes(module: str, before: Path, after: Path) -> list[str]:
    """What breaks in the public API of `module` between two source trees (each the folder that
    holds the module's package), as griffe explains each break."""
    import griffe  # noqa: PLC0415 - only this check needs it (a dev tool of the environment)

    def load(search_path: Path) -> griffe.Object | griffe.Alias:
        # Read from the tree alone: never the installed package of the same name.
        return griffe.load(module, search_paths=[search_path], allow_inspection=False)

    def explained(breakage: griffe.Breakage) -> str:
        change = f"{breakage.obj.path}: {breakage.kind.value}"
        if breakage.old_value is None or breakage.new_value is None:
            return change  # a name removed, or added where it breaks: its path says it
        return f"{change}: {breakage.old_value} -> {breakage.new_value}"

    return [explained(b) for b in griffe.find_breaking_changes(load(before), load(after))]
