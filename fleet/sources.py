"""Where the fleet's repositories come from: a fleet file, or an organisation's topic on GitHub."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import yaml

from fleet.commands import CommandError, checked

GITHUB_NAME = re.compile(r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$")
GITHUB_URL = re.compile(r"^(?:https://github\.com/|git@github\.com:)([^/]+/[^/]+?)(?:\.git)?/?$")


class FleetFileError(ValueError):
    """A fleet file that cannot be read as a list of repositories."""


@dataclass(frozen=True)
class Repository:
    """One entry of the fleet: the name the report shows and the URL git clones."""

    name: str
    url: str

    @property
    def github(self) -> str | None:
        """owner/name when the repository is on GitHub (what `gh --repo` takes), else None."""
        match = GITHUB_URL.match(self.url)
        return match[1] if match else None


def repository(entry: str, base: Path) -> Repository:
    """An entry as the fleet file gives it: GitHub's owner/name, a git URL, or a path (relative
    to the fleet file's folder)."""
    if GITHUB_NAME.match(entry) and not (base / entry).exists():
        return Repository(entry, f"https://github.com/{entry}.git")
    if re.match(r"^[a-z][a-z0-9+.-]*://", entry) or re.match(r"^[^/]+@[^/]+:", entry):
        name = re.sub(r"(\.git)?/?$", "", entry).rsplit("/", 1)[-1].rsplit(":", 1)[-1]
        github = GITHUB_URL.match(entry)
        return Repository(github[1] if github else name, entry)
    path = (base / entry).resolve()
    return Repository(path.name.removesuffix(".git"), path.as_uri())


def read_fleet_file(path: Path) -> list[Repository]:
    """The `services:` list of a fleet file (the one the core's release workflow reads too)."""
    try:
        document = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as error:
        raise FleetFileError(f"{path}: {error}") from error
    services = (document or {}).get("services") if isinstance(document, dict) else None
    if services is None:
        services = []
    if not isinstance(services, list) or not all(isinstance(item, str) for item in services):
        raise FleetFileError(f"{path}: `services` must be a list of repositories (strings)")
    return [repository(entry, path.parent) for entry in services]


def topic_repositories(organisation: str, topic: str) -> list[Repository]:
    """The organisation's repositories carrying the topic, as `gh repo list` lists them."""
    try:
        listed = checked(
            ["gh", "repo", "list", organisation, "--topic", topic, "--no-archived",
             "--limit", "1000", "--json", "nameWithOwner,url"]
        )  # fmt: skip
    except CommandError as error:
        raise FleetFileError(f"gh repo list {organisation} --topic {topic}: {error}") from error
    return [
        Repository(item["nameWithOwner"], item["url"] + ".git")
        for item in sorted(json.loads(listed), key=lambda item: item["nameWithOwner"])
    ]
