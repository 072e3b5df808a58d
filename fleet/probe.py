"""What one repository of the fleet says about itself, read from a shallow clone: its answers,
its lock, its leftover conflicts, and (through `gh`) its open update pull requests."""

from __future__ import annotations

import contextlib
import json
import re
import shutil
import threading
import tomllib
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path, PurePosixPath
from typing import Any, TypeVar, cast

import yaml
from packaging.specifiers import InvalidSpecifier
from packaging.utils import canonicalize_name
from packaging.version import Version

from fleet import index
from fleet.commands import CommandError, checked, git, run, run_bytes
from fleet.isolated import isolated_members
from fleet.libraries import Library, private_libraries
from fleet.simple_index import IndexUnreadableError
from fleet.sources import Repository

ANSWERS = ".copier-answers.yml"
CATALOG_INFO = "catalog-info.yaml"
"""The service's entities for the developer portal (Backstage's software catalog)."""
CORE_BUMP_BRANCH = "core-bump/"
UPDATE_BRANCHES = ("template-update/", CORE_BUMP_BRANCH)
"""Branches the services' workflows open pull requests from (template-update, core-bump)."""
CONFLICT_MARKER = r"^(<<<<<<<|>>>>>>>)( |$)"
LEFTOVER_SUFFIXES = (".rej", ".team-edits")
READ = frozenset({ANSWERS, CATALOG_INFO, "pyproject.toml", "uv.lock"})
"""The files a probe reads, at a service's root."""
SHORTHANDS = {"gh:": "https://github.com/", "gl:": "https://gitlab.com/"}
TEMPLATE_QUESTIONS = ("service_name", "core_package", "core_version")
"""Answers every service made from this template records: a repository without them was made from
another template."""


class UnreadableError(Exception):
    """What the report can say about a repository it could not read, or a part of one."""


@dataclass
class PullRequest:
    branch: str
    url: str
    opened: str
    """ISO 8601 time it was opened."""

    def age_days(self, now: datetime) -> int:
        return (now - datetime.fromisoformat(self.opened)).days


@dataclass
class Service:
    """One service's line of the report; `error` set when the repository could not be read."""

    name: str
    repository: str
    folder: str = ""
    """Where the service is in its repository: "" at its root, projects/<name> in a workspace."""
    error: str | None = None
    template: str | None = None
    version: str | None = None
    latest: str | None = None
    behind: int | None = None
    layout: str | None = None
    database: str | None = None
    python: str | None = None
    core_package: str | None = None
    core_range: str | None = None
    core_locked: str | None = None
    core_newest: str | None = None
    core_note: str | None = None
    pull_requests: list[PullRequest] | None = None
    """Open template-update and core-bump pull requests; None when `gh` cannot tell."""
    leftovers: list[str] = field(default_factory=list)
    """Files with conflict markers, *.rej and *.team-edits files."""
    entity: str | None = None
    """Its entity reference in the developer portal (kind:namespace/name)."""
    last_core_bump: str | None = None
    """ISO 8601 time its newest core-bump pull request was merged; None if none was or `gh`
    cannot tell."""
    libraries: list[Library] = field(default_factory=list)
    """Published libraries it installs from its private index (fleet/libraries.py)."""

    @property
    def workspace_root(self) -> bool:
        """A workspace's root: the release its next `make service` renders, and its one lock."""
        return self.layout == "workspace" and not self.folder

    @property
    def core_behind(self) -> bool | None:
        if self.core_locked is None or self.core_newest is None:
            return None
        return Version(self.core_locked) < Version(self.core_newest)


def template_url(source: str) -> str:
    """The URL git reads the template from, for the `_src_path` an answers file records."""
    for shorthand, prefix in SHORTHANDS.items():
        if source.startswith(shorthand):
            return prefix + source.removeprefix(shorthand).removesuffix(".git") + ".git"
    return source


def release_version(reference: str) -> Version | None:
    """The release a `_commit` is, or follows (`v1.2.0-3-gabc1234` follows v1.2.0)."""
    match = re.match(r"^v?(\d+(\.\d+)*)(-\d+-g[0-9a-f]+)?$", reference)
    return Version(match[1]) if match else None


T = TypeVar("T")


class Context:
    """What every probe shares: the template's releases, the index's versions and the pull
    requests `gh` lists, each asked once per run."""

    def __init__(self, *, template: str | None, index_url: str | None, use_gh: bool) -> None:
        self.template = template
        self.index_url = index_url
        self.use_gh = use_gh
        self._lock = threading.Lock()
        self._key_locks: dict[tuple[str, ...], threading.Lock] = defaultdict(threading.Lock)
        self._results: dict[tuple[str, ...], object] = {}

    def _once(self, key: tuple[str, ...], compute: Callable[[], T]) -> T:
        """compute() the first time the key is asked for, by one thread; its result (or its
        error) every time."""
        with self._lock:
            key_lock = self._key_locks[key]
        with key_lock:
            if key not in self._results:
                try:
                    self._results[key] = compute()
                except (CommandError, IndexUnreadableError, InvalidSpecifier) as error:
                    self._results[key] = UnreadableError(str(error))
            result = self._results[key]
        if isinstance(result, UnreadableError):
            raise UnreadableError(str(result))
        return cast("T", result)

    def releases(self, url: str) -> list[Version]:
        """The template's releases: its vX.Y.Z tags, oldest first."""

        def list_tags() -> list[Version]:
            tags = git("ls-remote", "--tags", "--refs", url)
            names = [line.split("refs/tags/", 1)[1] for line in tags.splitlines()]
            return sorted(
                version
                for name in names
                if (version := release_version(name)) and name.startswith("v")
            )

        return list(self._once(("tags", url), list_tags))

    def newest_core(self, url: str, package: str, allowed: str, name: str | None) -> Version | None:
        return self._once(
            ("core", url, package, allowed),
            lambda: index.newest_allowed(url, package, allowed, name),
        )

    def pull_requests(self, github: str) -> list[PullRequest]:
        def list_pull_requests() -> list[PullRequest]:
            listed = checked(
                ["gh", "pr", "list", "--repo", github, "--state", "open", "--limit", "100",
                 "--json", "headRefName,url,createdAt"]
            )  # fmt: skip
            return [
                PullRequest(item["headRefName"], item["url"], item["createdAt"])
                for item in json.loads(listed)
                if item["headRefName"].startswith(UPDATE_BRANCHES)
            ]

        return list(self._once(("prs", github), list_pull_requests))

    def last_core_bump(self, github: str) -> str | None:
        """When the repository's newest core-bump pull request was merged (None: never)."""

        def newest_merge() -> str | None:
            listed = checked(
                ["gh", "pr", "list", "--repo", github, "--state", "merged", "--search",
                 f"head:{CORE_BUMP_BRANCH}", "--limit", "20", "--json", "headRefName,mergedAt"]
            )  # fmt: skip
            merged = [
                item["mergedAt"]
                for item in json.loads(listed)
                if item["headRefName"].startswith(CORE_BUMP_BRANCH)
            ]
            return max(merged, key=datetime.fromisoformat, default=None)

        return self._once(("core-bump", github), newest_merge)


def gh_ready() -> bool:
    """Whether `gh` is installed and logged in, so it can list pull requests."""
    if shutil.which("gh") is None:
        return False
    return run(["gh", "auth", "status"]).returncode == 0


def clone_url(url: str) -> str:
    """A local path as a file:// URL, so that git honours --depth for it too."""
    return Path(url).resolve().as_uri() if url.startswith("/") else url


def shallow_clone(repository: Repository, destination: Path) -> None:
    """The default branch's last commit, without a working tree: the probe reads files from it."""
    git(
        "clone",
        "--quiet",
        "--depth=1",
        "--no-checkout",
        clone_url(repository.url),
        str(destination),
    )


def probe(repository: Repository, scratch: Path, context: Context) -> list[Service]:
    """Every service the repository holds (one, or a workspace's root and each of its services),
    each with what the report says about it; a single line with the error when the repository
    cannot be read."""
    clone = scratch / "clone"
    try:
        shallow_clone(repository, clone)
    except CommandError as error:
        return [Service(repository.name, repository.url, error=f"unreachable: {error}")]
    try:
        tree = read_tree(clone)
        root = read_answers(tree, "")
        members = sorted(
            str(PurePosixPath(path).parent)
            for path in tree.files
            if root.get("layout") == "workspace"
            and re.fullmatch(rf"projects/[^/]+/{re.escape(ANSWERS)}", path)
        )
        return [describe(repository, context, tree, "", root)] + [
            describe(repository, context, tree, folder, read_answers(tree, folder))
            for folder in members
        ]
    except (CommandError, UnreadableError) as error:
        return [Service(repository.name, repository.url, error=str(error))]
    finally:
        shutil.rmtree(clone, ignore_errors=True)


@dataclass
class Tree:
    """The files of a clone's last commit, and the text of those the probe reads."""

    clone: Path
    files: list[str]
    texts: dict[str, str]


def read_tree(clone: Path) -> Tree:
    """The file list, and in one `git cat-file --batch` every answers file, pyproject.toml and
    uv.lock at the root or one folder below projects/."""
    files = git("ls-tree", "-r", "--name-only", "HEAD", cwd=clone).splitlines()
    wanted = [
        path
        for path in files
        if PurePosixPath(path).name in READ
        and (
            PurePosixPath(path).parent == PurePosixPath()
            or re.match(r"projects/[^/]+/[^/]+$", path)
        )
    ]
    requests = "".join(f"HEAD:{path}\n" for path in wanted).encode()
    batch = run_bytes(["git", "cat-file", "--batch"], clone, requests)
    texts: dict[str, str] = {}
    position = 0
    for path in wanted:
        header_end = batch.index(b"\n", position)
        size = int(batch[position:header_end].split()[2])
        texts[path] = batch[header_end + 1 : header_end + 1 + size].decode(errors="replace")
        position = header_end + 1 + size + 1
    return Tree(clone, files, texts)


def read_answers(tree: Tree, folder: str) -> dict[str, Any]:
    path = str(PurePosixPath(folder, ANSWERS))
    text = tree.texts.get(path)
    if text is None:
        raise UnreadableError(f"not made from this template: no {path}")
    try:
        answers = yaml.safe_load(text)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark is not None else ""
        raise UnreadableError(
            f"malformed {path}{where}: {getattr(error, 'problem', error)}"
        ) from error
    if not isinstance(answers, dict):
        raise UnreadableError(f"malformed {path}: not a mapping of answers")
    if answers.get("layout") != "workspace" and not all(
        key in answers for key in TEMPLATE_QUESTIONS
    ):
        raise UnreadableError(
            f"not made from this template: {path} lacks {', '.join(TEMPLATE_QUESTIONS)}"
        )
    return answers


def describe(
    repository: Repository, context: Context, tree: Tree, folder: str, answers: dict[str, Any]
) -> Service:
    name = f"{repository.name}/{folder}" if folder else repository.name
    service = Service(
        name,
        repository.url,
        folder=folder,
        version=str(answers.get("_commit", "")) or None,
        layout="workspace" if folder else str(answers.get("layout", "service")),
        # A workspace's root has no database: its services own theirs.
        database=None
        if answers.get("layout") == "workspace"
        else str(answers.get("database", "none")),
        python=str(answers.get("python_version", "")) or None,
        core_package=str(answers["core_package"]),
        core_range=str(answers["core_version"]),
    )
    if folder in isolated_members(tree.files):
        service.layout = "workspace, isolated (own lock)"
    service.leftovers = leftovers(tree, folder)
    service.entity = entity_reference(tree, folder, answers)
    template_releases(service, context, str(answers.get("_src_path", "")))
    core_versions(service, context, tree, folder, answers)
    library_versions(service, context, tree, folder, answers)
    if context.use_gh and repository.github:
        try:
            service.pull_requests = context.pull_requests(repository.github)
        except UnreadableError:
            service.pull_requests = None
        with contextlib.suppress(UnreadableError):
            service.last_core_bump = context.last_core_bump(repository.github)
    return service


def entity_reference(tree: Tree, folder: str, answers: dict[str, Any]) -> str:
    """The reference of the first entity of the folder's catalog-info.yaml (the service's
    Component, as the template writes it), or the template's own, component:default/<service>,
    when the file is missing or unreadable."""
    text = tree.texts.get(str(PurePosixPath(folder, CATALOG_INFO))) or ""
    try:
        entity = next(iter(yaml.safe_load_all(text)), None)
    except yaml.YAMLError:
        entity = None
    metadata = entity.get("metadata") if isinstance(entity, dict) else None
    if isinstance(entity, dict) and isinstance(metadata, dict) and "name" in metadata:
        namespace = metadata.get("namespace", "default")
        return f"{str(entity.get('kind', 'component')).lower()}:{namespace}/{metadata['name']}"
    return f"component:default/{answers['service_name']}"


def leftovers(tree: Tree, folder: str) -> list[str]:
    inside = [path for path in tree.files if not folder or path.startswith(folder + "/")]
    named = {path for path in inside if path.endswith(LEFTOVER_SUFFIXES)}
    grep = run(["git", "grep", "-lE", CONFLICT_MARKER, "HEAD", "--", folder or "."], tree.clone)
    marked = {line.removeprefix("HEAD:") for line in grep.stdout.splitlines()}
    return sorted(named | marked)


def template_releases(service: Service, context: Context, source: str) -> None:
    url = context.template or template_url(source)
    service.template = url or None
    if not url:
        service.error = "the answers record no template (_src_path)"
        return
    try:
        releases = context.releases(url)
    except UnreadableError as error:
        service.error = f"template releases unreadable: {error}"
        return
    if releases:
        service.latest = f"v{releases[-1]}"
    current = release_version(service.version or "")
    if current is not None:
        service.behind = sum(1 for release in releases if release > current)


def core_versions(
    service: Service, context: Context, tree: Tree, folder: str, answers: dict[str, Any]
) -> None:
    package = service.core_package or ""
    lock = tree.texts.get(str(PurePosixPath(folder, "uv.lock"))) or tree.texts.get("uv.lock")
    if lock is not None:
        service.core_locked = locked_version(lock, package)
    url, index_name = core_index(tree, folder, answers)
    if context.index_url:
        url = context.index_url
    if not url:
        service.core_note = "no index to ask for the core"
        return
    try:
        newest = context.newest_core(url, package, service.core_range or "", index_name)
    except UnreadableError as error:
        service.core_note = f"index unreadable: {error}"
        return
    service.core_newest = str(newest) if newest else None


def library_versions(
    service: Service, context: Context, tree: Tree, folder: str, answers: dict[str, Any]
) -> None:
    """The published libraries the service locks from its own index, each with the newest release
    its range allows."""
    lock = tree.texts.get(str(PurePosixPath(folder, "uv.lock"))) or tree.texts.get("uv.lock")
    url, index_name = core_index(tree, folder, answers)
    if lock is None or not url:
        return
    pyproject = tree.texts.get(str(PurePosixPath(folder, "pyproject.toml")))
    service.libraries = private_libraries(lock, pyproject, url, service.core_package or "")
    for library in service.libraries:
        try:
            newest = context.newest_core(
                context.index_url or url, library.name, library.allowed, index_name
            )
        except UnreadableError:
            continue
        library.newest = str(newest) if newest else None


def locked_version(lock: str, package: str) -> str | None:
    """The package's version in a uv.lock. uv writes each `[[package]]` table with its
    (normalized) name and version first; a regular expression reads that much faster than a TOML
    parser reads the whole lock."""
    entry = (
        rf'^\[\[package\]\]\nname = "{re.escape(canonicalize_name(package))}"\nversion = "([^"]+)"'
    )
    match = re.search(entry, lock, re.MULTILINE)
    return match[1] if match else None


def core_index(tree: Tree, folder: str, answers: dict[str, Any]) -> tuple[str | None, str | None]:
    """The index the service resolves its core from (its pyproject's uv index for the core, or the
    answers' core_index_url), and that index's name (which names its credentials)."""
    text = tree.texts.get(str(PurePosixPath(folder, "pyproject.toml")))
    if text is not None:
        try:
            uv = tomllib.loads(text).get("tool", {}).get("uv", {})
        except tomllib.TOMLDecodeError:
            uv = {}
        source = uv.get("sources", {}).get(answers.get("core_package"), {})
        for entry in uv.get("index", []):
            if isinstance(source, dict) and entry.get("name") == source.get("index"):
                return str(entry.get("url")), str(entry.get("name"))
    url = answers.get("core_index_url")
    return (str(url), "private") if url else (None, None)
