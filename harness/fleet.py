"""A fleet of services as local bare git repositories, for `fleet`'s tests and benchmark.

Three services are generated for real (`copier copy` from template releases v1.0.0, v1.1.0 and
v1.2.0, tasks and all); every other service is a clone of one of them with a few commits of its
own: team edits, a conflict left in, an older core in its lock, another answer. A workspace and
three bad entries (an unreachable repository, one made from no template, a malformed answers file)
complete it. `expected` records, for each line the report must print, what the fleet was made
with.

Entries named `acme/<name>` are GitHub names: git is pointed at the local remotes for them
(`url.<remotes>.insteadOf=https://github.com/acme/`, in `env`), and a fake `gh` on PATH answers
`gh pr list` from `PULL_REQUESTS` and records every call.
"""

from __future__ import annotations

import os
import re
import shutil
import sys
import textwrap
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from fleet.simple_index import add_to_index
from harness.commands import find_python, git
from harness.generate import SERVICE_NAME, copy
from harness.template_repo import commit_all, release, snapshot, template_file
from harness.workspace import generate_workspace

LATEST = "v1.2.0"
PYTHON = "3.11"
"""copier.yml's default python_version."""
OLD_CORE = "1.1.0"
CORE_IN_LOCK = r'^name = "smplkit-core"\nversion = "([^"]+)"'
"""The core's entry in a uv.lock (its version, group 1)."""
OUT_OF_RANGE_CORE = "2.0.0"
"""On the index, outside the services' range (>=1.0,<2): never the newest a service may have."""
TEMPLATE_GITIGNORE = "# Kept current by the service template."
TEAM_GITIGNORE = "# The orders team keeps its own ignore rules."
TEAM_DOCKERFILE = "# The orders team pins its base image by digest."
CONFLICT_LEFT_IN = "<<<<<<< before updating\nold\n=======\nnew\n>>>>>>> after updating\n"
SERVICE_RELEASES = ["v1.0.0"] * 3 + ["v1.1.0"] * 2 + [LATEST] * 15
"""The release each of s01..s20 was made at."""
PULL_REQUESTS = {
    "acme/s05": [("template-update/1.2.0", 12)],
    "acme/s11": [("core-bump/1.2.0", 3), ("feature/unrelated", 1)],
}
"""Open pull requests the fake gh lists: (branch, days open). Only update branches are reported."""
MERGED_PULL_REQUESTS = {
    "acme/s07": [("core-bump/1.1.0", 30), ("core-bump/1.2.0", 4), ("template-update/1.2.0", 2)],
    "acme/s08": [("template-update/1.2.0", 6)],
}
"""Merged pull requests the fake gh lists: (branch, days since the merge). The report's last core
bump is the newest core-bump one's."""
TOPIC = "smplkit-service"
TOPIC_REPOSITORIES = ["acme/s13", "acme/s05"]
"""What the fake `gh repo list acme --topic smplkit-service` lists."""


@dataclass
class Expected:
    """What the report must say about one line."""

    version: str | None = None
    behind: int | None = None
    layout: str = "service"
    database: str | None = "none"
    python: str = PYTHON
    core_locked: str | None = None
    core_newest: str | None = None
    pull_requests: list[tuple[str, int]] | None = None
    leftovers: list[str] = field(default_factory=list)
    error: str | None = None
    """A phrase the line's error holds (bad entries only)."""


@dataclass
class Fleet:
    root: Path
    template: Path
    fleet_file: Path
    env: dict[str, str]
    """PATH with the fake gh first, and git's insteadOf for the acme/ names."""
    gh_calls: Path
    expected: dict[str, Expected]
    remotes: dict[str, Path]
    """Each good entry's bare repository, by report name (a workspace's by its own name)."""
    team_lines: dict[str, list[str]]
    """Lines each service's team wrote, by report name."""


def build_template(destination: Path) -> Path:
    """The template at v1.0.0 (the working tree), v1.1.0 (.gitignore's first line rewritten) and
    v1.2.0 (a new template-owned document)."""
    repository = snapshot(destination, tag="v1.0.0")
    gitignore = template_file(repository, ".gitignore")
    lines = gitignore.read_text().splitlines(keepends=True)
    gitignore.write_text(TEMPLATE_GITIGNORE + "\n" + "".join(lines[1:]))
    release(repository, "v1.1.0")
    operations = template_file(repository, "docs/operations.md.jinja")
    operations.parent.mkdir()
    operations.write_text("# Operating {{ service_name }}\n")
    release(repository, LATEST)
    return repository


def build_index(destination: Path, core_index: Path) -> str:
    """A copy of the core's index with a release outside the services' range added; its URL."""
    shutil.copytree(core_index, destination)
    wheel = destination.parent / f"smplkit_core-{OUT_OF_RANGE_CORE}-py3-none-any.whl"
    wheel.write_bytes(b"never installed")
    add_to_index(destination, "smplkit-core", [wheel])
    return destination.resolve().as_uri()


def locked_core(service: Path) -> str:
    match = re.search(CORE_IN_LOCK, (service / "uv.lock").read_text(), re.MULTILINE)
    if match is None:
        raise ValueError(f"{service}/uv.lock locks no smplkit-core")
    return match[1]


def days_ago(now: datetime, days: int) -> str:
    """The time the fake gh gives for `days` days ago (and an hour, so that whole days count)."""
    return (now - timedelta(days=days, hours=1)).isoformat()


def fake_gh(folder: Path, calls: Path, now: datetime) -> Path:
    """A `gh` that is logged in (unless FAKE_GH_LOGGED_OUT is set), lists PULL_REQUESTS (open) and
    MERGED_PULL_REQUESTS (`--state merged`) and the repositories with TOPIC, and records every
    call (one JSON line)."""
    merged = {
        repo: [{"headRefName": branch, "mergedAt": days_ago(now, days)} for branch, days in prs]
        for repo, prs in MERGED_PULL_REQUESTS.items()
    }
    listed = {
        repo: [
            {
                "headRefName": branch,
                "url": f"https://github.com/{repo}/pull/{number}",
                "createdAt": days_ago(now, days),
            }
            for number, (branch, days) in enumerate(prs, start=1)
        ]
        for repo, prs in PULL_REQUESTS.items()
    }
    topic_repositories = [
        {"nameWithOwner": name, "url": f"https://github.com/{name}"} for name in TOPIC_REPOSITORIES
    ]
    script = folder / "gh"
    folder.mkdir(parents=True, exist_ok=True)
    script.write_text(
        f"#!{sys.executable}\n"
        + textwrap.dedent(f"""\
            import json, os, sys
            args = sys.argv[1:]
            with open({str(calls)!r}, "a") as log:
                log.write(json.dumps(args) + "\\n")
            if args[:2] == ["auth", "status"] and os.environ.get("FAKE_GH_LOGGED_OUT"):
                sys.exit("You are not logged into any GitHub hosts.")
            if args[:2] == ["pr", "list"]:
                listed = {{"open": {listed!r}, "merged": {merged!r}}}
                state = listed[args[args.index("--state") + 1]]
                print(json.dumps(state.get(args[args.index("--repo") + 1], [])))
            elif args[:3] == ["repo", "list", "acme"] and {TOPIC!r} in args:
                print(json.dumps({topic_repositories!r}))
            elif args[:2] not in (["auth", "status"], ["workflow", "run"]):
                sys.exit(f"fake gh: unexpected {{args}}")
            """)
    )
    script.chmod(0o755)
    return script


def clone(source: Path, destination: Path) -> Path:
    git("clone", "--quiet", str(source), str(destination), cwd=source.parent)
    git("config", "user.name", "Team", cwd=destination)
    git("config", "user.email", "team@example.com", cwd=destination)
    return destination


def publish(work: Path, remote: Path) -> Path:
    git("clone", "--quiet", "--bare", str(work), str(remote), cwd=work.parent)
    return remote


def rewrite(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    if old not in text:
        raise ValueError(f"{path} does not contain {old!r}")
    path.write_text(text.replace(old, new, 1))


def build_fleet(root: Path, core_index: Path) -> Fleet:  # noqa: PLR0915 - one fleet, entry by entry
    """The fleet under `root`, its services' core resolved from a copy of `core_index` (the
    folder of a file:// index holding the core)."""
    now = datetime.now(UTC)
    template = build_template(root / "template")
    index_url = build_index(root / "index", core_index)
    interpreter = find_python(PYTHON)
    if interpreter is None:
        raise RuntimeError(f"Python {PYTHON} is needed to generate the fleet's services")
    generated: dict[str, Path] = {}
    for version, answers in [
        ("v1.0.0", {}),
        ("v1.1.0", {"database": "postgres"}),
        (LATEST, {}),
    ]:
        destination = root / "generated" / version
        copy(
            template,
            destination,
            {"core_index_url": index_url, **answers},
            vcs_ref=version,
            env={"UV_PYTHON": interpreter},
        )
        generated[version] = destination
    core = locked_core(generated[LATEST])
    remotes_folder = root / "remotes"
    remotes_folder.mkdir()
    work = root / "work"
    expected: dict[str, Expected] = {}
    remotes: dict[str, Path] = {}
    team_lines: dict[str, list[str]] = {}
    entries: list[str] = []

    def service(name: str, base: str, **overrides: object) -> Path:
        """A clone of the service generated at `base`, to change and publish as `name`."""
        checkout = clone(generated[base], work / name)
        # Each service is its own entity in the developer portal.
        rewrite(checkout / "catalog-info.yaml", f"name: {SERVICE_NAME}", f"name: {name}")
        behind = {"v1.0.0": 2, "v1.1.0": 1, LATEST: 0}[base]
        report_name = f"acme/{name}"
        expected[report_name] = Expected(
            version=base,
            behind=behind,
            database="postgres" if base == "v1.1.0" else "none",
            core_locked=core,
            core_newest=core,
            pull_requests=[
                (branch, days)
                for branch, days in PULL_REQUESTS.get(report_name, [])
                if branch.startswith(("template-update/", "core-bump/"))
            ],
        )
        for key, value in overrides.items():
            setattr(expected[report_name], key, value)
        entries.append(report_name)
        return checkout

    for number, base in enumerate(SERVICE_RELEASES, start=1):
        name = f"s{number:02d}"
        checkout = service(name, base)
        if name in ("s02", "s05"):
            (checkout / "Dockerfile").write_text(
                (checkout / "Dockerfile").read_text() + TEAM_DOCKERFILE + "\n"
            )
            team_lines[f"acme/{name}"] = [TEAM_DOCKERFILE]
        if name == "s03":
            gitignore = checkout / ".gitignore"
            lines = gitignore.read_text().splitlines(keepends=True)
            gitignore.write_text(TEAM_GITIGNORE + "\n" + "".join(lines[1:]))
            team_lines["acme/s03"] = [TEAM_GITIGNORE]
        if name == "s09":
            (checkout / "config" / "limits.toml").write_text(CONFLICT_LEFT_IN)
            expected["acme/s09"].leftovers = ["config/limits.toml"]
        if name == "s10":
            (checkout / "Dockerfile.rej").write_text("@@ -1 +1 @@\n-FROM old\n+FROM new\n")
            expected["acme/s10"].leftovers = ["Dockerfile.rej"]
        if name in ("s11", "s12"):
            lock = checkout / "uv.lock"
            lock.write_text(
                re.sub(
                    CORE_IN_LOCK,
                    lambda match: match[0].replace(f'"{core}"', f'"{OLD_CORE}"'),
                    lock.read_text(),
                    flags=re.MULTILINE,
                )
            )
            expected[f"acme/{name}"].core_locked = OLD_CORE
        if name == "s13":
            rewrite(
                checkout / ".copier-answers.yml", "python_version: '3.11'", "python_version: '3.13'"
            )
            expected["acme/s13"].python = "3.13"
        commit_all(checkout, "The team's own work")
        remotes[f"acme/{name}"] = publish(checkout, remotes_folder / f"{name}.git")

    # The same repositories can be listed by path and by URL (not on GitHub: gh is not asked).
    for name, entry in [("s19", "remotes/s19.git"), ("s20", (remotes_folder / "s20.git").as_uri())]:
        report_name = f"acme/{name}"
        entries[entries.index(report_name)] = entry
        expected[name] = expected.pop(report_name)
        expected[name].pull_requests = None
        remotes[name] = remotes.pop(report_name)

    # A workspace: root answers say so (its own line); projects/*/ hold its services' answers.
    workspace = clone(generated[LATEST], work / "w01")
    service_answers = (workspace / ".copier-answers.yml").read_text()
    rewrite(workspace / ".copier-answers.yml", "layout: service", "layout: workspace")

    def workspace_line(database: str | None) -> Expected:
        return Expected(
            version=LATEST,
            behind=0,
            layout="workspace",
            database=database,
            core_locked=core,
            core_newest=core,
            pull_requests=[],
        )

    expected["acme/w01"] = workspace_line(None)  # the root: its services own the databases
    for project, database in [("api", "none"), ("jobs", "postgres")]:
        folder = workspace / "projects" / project
        folder.mkdir(parents=True)
        member = service_answers.replace("workspace_member: false", "workspace_member: true")
        member = member.replace(f"service_name: {SERVICE_NAME}", f"service_name: {project}")
        if database == "postgres":
            member = member.replace("database: none", "database: postgres")
        (folder / ".copier-answers.yml").write_text(member)
        expected[f"acme/w01/projects/{project}"] = workspace_line(database)
    commit_all(workspace, "A workspace of two services")
    remotes["acme/w01"] = publish(workspace, remotes_folder / "w01.git")
    entries.append("acme/w01")

    # Bad entries: each reported on its own line.
    entries.append("acme/gone")
    missing = remotes_folder / "gone.git"
    expected["acme/gone"] = Expected(
        error=f"unreachable: '{missing}' does not appear to be a git repository"
    )
    foreign = work / "foreign"
    foreign.mkdir()
    git("init", "--quiet", "--initial-branch=main", cwd=foreign)
    (foreign / "README.md").write_text("# Made by hand\n")
    commit_all(foreign, "Not from the template")
    publish(foreign, remotes_folder / "foreign.git")
    entries.append("acme/foreign")
    expected["acme/foreign"] = Expected(error="not made from this template")
    malformed = clone(generated[LATEST], work / "malformed")
    (malformed / ".copier-answers.yml").write_text("_commit: v1.2.0\nservice_name: [orders\n")
    commit_all(malformed, "A hand edit gone wrong")
    publish(malformed, remotes_folder / "malformed.git")
    entries.append("acme/malformed")
    expected["acme/malformed"] = Expected(error="malformed .copier-answers.yml")

    fleet_file = root / "fleet.yml"
    fleet_file.write_text("services:\n" + "".join(f"  - {entry}\n" for entry in entries))
    gh_calls = root / "gh-calls.jsonl"
    fake_gh(root / "bin", gh_calls, now)
    env = {
        "PATH": os.pathsep.join(
            [str(root / "bin"), str(Path(sys.executable).parent), os.environ["PATH"]]
        ),
        "GIT_CONFIG_COUNT": "1",
        "GIT_CONFIG_KEY_0": f"url.{remotes_folder.as_uri()}/.insteadOf",
        "GIT_CONFIG_VALUE_0": "https://github.com/acme/",
    }
    return Fleet(root, template, fleet_file, env, gh_calls, expected, remotes, team_lines)


# A fleet for `fleet test-core`: services whose own `make check` really runs, some of which call a
# public core function the template itself never calls.

CORE_FLEET_SINGLES = ("orders", "billing", "search", "ledger", "notify")
CORE_FLEET_WORKSPACE = "platform"
CALLERS = ("billing", "ledger", "platform/projects/api")
"""The services that call smplcore.issue_internal_token: a candidate renaming it breaks them."""
CALLER_TEST = "tests/test_calls.py"
CALLS_MODULE = '''\
"""Calls to the billing service."""

from smplcore import CoreSettings, issue_internal_token


def billing_token(settings: CoreSettings) -> str:
    """A token for calling billing as this service."""
    token: str = issue_internal_token(settings, audience="billing")
    return token
'''
CALLS_TEST = '''\
"""The token for calling billing."""

from {package}.calls import billing_token
from {package}.settings import get_settings


def test_the_billing_token_is_a_jwt() -> None:
    assert billing_token(get_settings().core_settings()).count(".") == 2
'''


@dataclass
class CoreFleet:
    root: Path
    fleet_file: Path
    remotes: dict[str, Path]
    """Each repository's bare remote, by its name (the fleet file lists their paths)."""
    services: list[str]
    """Every service that installs the core, as `fleet test-core` names it."""
    index_url: str


def add_calls(project: Path, package: str) -> None:
    """A module calling the core's issue_internal_token, and its test."""
    (project / "src" / package / "calls.py").write_text(CALLS_MODULE)
    (project / CALLER_TEST).write_text(CALLS_TEST.format(package=package))


def build_core_fleet(root: Path, template: Path, index_url: str) -> CoreFleet:
    """Five single-service repositories (clones of one generated service, two calling the core's
    issue_internal_token) and a workspace (a service calling it, and a library without the core),
    as bare repositories listed in `root`/fleet.yml by path."""
    generated = root / "generated"
    copy(template, generated, {"core_index_url": index_url})
    work, remotes_folder = root / "work", root / "remotes"
    remotes_folder.mkdir(parents=True)
    remotes: dict[str, Path] = {}
    for name in CORE_FLEET_SINGLES:
        checkout = clone(generated, work / name)
        if name in CALLERS:
            add_calls(checkout, "orders")
        commit_all(checkout, f"The {name} team's work")
        remotes[name] = publish(checkout, remotes_folder / f"{name}.git")
    workspace = generate_workspace(
        template, work / CORE_FLEET_WORKSPACE, {"core_index_url": index_url}
    )
    workspace.make("service", "NAME=api")
    workspace.make("lib", "NAME=money")
    add_calls(workspace.path / "projects" / "api", "api")
    workspace.commit("A service calling the core, and a library without it")
    remotes[CORE_FLEET_WORKSPACE] = publish(
        workspace.path, remotes_folder / f"{CORE_FLEET_WORKSPACE}.git"
    )
    fleet_file = root / "fleet.yml"
    fleet_file.write_text("services:\n" + "".join(f"  - remotes/{name}.git\n" for name in remotes))
    services = [*CORE_FLEET_SINGLES, f"{CORE_FLEET_WORKSPACE}/projects/api"]
    return CoreFleet(root, fleet_file, remotes, services, index_url)
