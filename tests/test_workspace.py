"""The workspace form: many services and internal libraries in one repository, one lock.

One workspace is generated for the module (the core from the local file:// index), as a team builds
it: `make service` twice (one with postgres), `make lib`, `make add-lib`. Tests that change it work
on a git clone of it.
"""

from __future__ import annotations

import json
import re
import shlex
import shutil
import tomllib
from pathlib import Path
from typing import Any

import pytest

from harness.commands import git, run
from harness.generate import copy
from harness.workspace import Workspace, generate_workspace
from tests.backstage_catalog import entity_ref, location_targets, read_entities
from tests.services import assert_pytest_green, service_files
from tests.tools import GITHUB_EXPRESSION, dev_tool

pytestmark = pytest.mark.xdist_group("workspace")

ROOT_ONLY = (
    ".github",
    ".pre-commit-config.yaml",
    ".python-version",
    "Dockerfile",
    "uv.lock",
    "ruff.toml",
    "config",
)
"""What the root holds once for every member: no service has its own."""


@pytest.fixture(scope="module")
def workspace(
    tmp_path_factory: pytest.TempPathFactory, template_repo: Path, base_answers: dict[str, str]
) -> Workspace:
    """billing (uses the money library) and ledger (postgres, no library), committed."""
    created = generate_workspace(
        template_repo, tmp_path_factory.mktemp("workspace") / "acme-services", base_answers
    )
    created.make("service", "NAME=billing")
    created.make("service", "NAME=ledger", "DATABASE=postgres")
    created.make("lib", "NAME=money")
    created.make("add-lib", "SERVICE=billing", "LIB=money")
    created.commit("Two services and a library")
    return created


def pyproject(folder: Path) -> dict[str, Any]:
    return tomllib.loads((folder / "pyproject.toml").read_text())


def test_the_root_records_the_workspace_answers_and_no_service_answer(
    workspace: Workspace,
) -> None:
    answers = workspace.answers()
    assert answers["layout"] == "workspace"
    assert answers["core_source"] == "index"
    for service_only in ("package_name", "database", "http_port", "slack_channel", "description"):
        assert service_only not in answers, service_only


def test_the_root_is_rendered_whole(workspace: Workspace) -> None:
    """No Jinja left in the root's files (GitHub's own `${{ }}` aside), and its TOML parses.
    tools/ is copied as it is (its Python formats strings with braces)."""
    leftovers = []
    for path in service_files(workspace.path):
        relative = path.relative_to(workspace.path)
        if relative.parts[0] in {"projects", "lib", "tools"}:
            continue
        text = GITHUB_EXPRESSION.sub("", path.read_text())
        leftovers += [f"{relative}: {marker}" for marker in ("{{", "{%", "{#") if marker in text]
        if path.suffix == ".toml":
            tomllib.loads(path.read_text())
    assert not leftovers


def test_a_service_question_answered_for_the_root_is_refused_and_nothing_is_written(
    tmp_path: Path, template_repo: Path, base_answers: dict[str, str]
) -> None:
    destination = tmp_path / "acme-services"
    data = {**base_answers, "layout": "workspace", "database": "postgres"}
    result = copy(template_repo, destination, data, check=False)
    assert result.returncode != 0
    assert "asks no question of a service's own (database)" in result.stderr, result.stderr
    assert "make service NAME=billing DATABASE=postgres" in result.stderr
    assert not destination.exists()


def test_a_workspace_without_members_locks_without_a_warning(
    tmp_path: Path, template_repo: Path, base_answers: dict[str, str]
) -> None:
    """The root says which Python it is for: uv need not guess it before the first member."""
    destination = tmp_path / "acme-services"
    copy(template_repo, destination, {**base_answers, "layout": "workspace"}, skip_tasks=True)
    locked = run([dev_tool("uv"), "lock"], cwd=destination)
    assert "warning" not in locked.stderr.lower(), locked.stderr
    assert 'requires-python = ">=3.11"' in (destination / "uv.lock").read_text()


def test_a_service_takes_the_workspace_answers_and_is_a_member(workspace: Workspace) -> None:
    root = workspace.answers()
    billing = workspace.answers("projects/billing")
    assert billing["workspace_member"] is True
    for inherited in ("aws_region", "aws_account_id", "core_index_url", "python_version"):
        assert billing[inherited] == root[inherited], inherited
    assert billing["_commit"] == root["_commit"]
    assert workspace.answers("projects/ledger")["database"] == "postgres"


def test_the_root_s_location_finds_every_member_s_entities_in_the_workspace_s_repository(
    workspace: Workspace,
) -> None:
    """Backstage follows the root's Location to each service's and library's catalog-info.yaml
    (all valid as it reads them): each names the workspace's repository and its own folder."""
    root = workspace.path / "catalog-info.yaml"
    (location,) = read_entities(root)
    assert entity_ref(location) == "location:default/acme-services"
    targets = location_targets(root)
    assert [str(path.relative_to(workspace.path)) for path in targets] == [
        "lib/money/catalog-info.yaml",
        "projects/billing/catalog-info.yaml",
        "projects/ledger/catalog-info.yaml",
    ]
    entities = {entity_ref(e): e for target in targets for e in read_entities(target)}
    assert sorted(entities) == [
        "api:default/billing",
        "api:default/ledger",
        "component:default/billing",
        "component:default/ledger",
        "component:default/money",
        "resource:default/ledger-database",
    ]
    for entity in entities.values():
        assert (entity["spec"]["owner"], entity["spec"]["system"]) == (
            "group:platform",
            "product-services",
        )
    repository = "https://github.com/smplkit/acme-services/tree/main"
    billing, money = entities["component:default/billing"], entities["component:default/money"]
    for component, folder in [(billing, "projects/billing"), (money, "lib/money")]:
        annotations = component["metadata"]["annotations"]
        assert annotations["github.com/project-slug"] == "smplkit/acme-services"
        assert annotations["backstage.io/source-location"] == f"url:{repository}/{folder}/"
    assert (billing["spec"]["type"], money["spec"]["type"]) == ("service", "library")
    # make lib writes the library's entity without the template: it keeps the member's shape.
    assert set(money["metadata"]["annotations"]) < set(billing["metadata"]["annotations"])
    assert set(money["spec"]) < set(billing["spec"])
    definition = entities["api:default/billing"]["spec"]["definition"]
    assert definition == (workspace.path / "projects/billing/openapi.json").read_text()
    # The root's `make openapi` (as the core-bump and template-update workflows run it) runs each
    # service's (as CI does), which writes the document its seed already holds.
    written = workspace.make("openapi").stdout
    for service in ("billing", "ledger"):
        assert f"uv run python -m {service}.openapi" in written, written
    assert git("status", "--porcelain", cwd=workspace.path) == ""


def test_one_lock_at_the_root_and_nothing_the_root_holds_below_it(workspace: Workspace) -> None:
    files = [path.relative_to(workspace.path) for path in service_files(workspace.path)]
    locks = [path for path in files if path.name == "uv.lock"]
    assert locks == [Path("uv.lock")]
    for service in ("billing", "ledger"):
        folder = workspace.path / "projects" / service
        assert not [name for name in ROOT_ONLY if (folder / name).exists()], service
        assert (folder / "infra" / "ecs" / "task-definition.json").is_file()
    assert (workspace.path / "projects/ledger/infra/terraform/main.tf").is_file()
    assert (workspace.path / "projects/ledger/migrations/env.py").is_file()
    locked = {
        package["name"]
        for package in tomllib.loads((workspace.path / "uv.lock").read_text())["package"]
    }
    assert {"billing", "ledger", "money"} <= locked


def test_members_get_the_core_and_its_index_from_the_root(
    workspace: Workspace, core_index_url: str
) -> None:
    root = pyproject(workspace.path)
    assert root["tool"]["uv"]["index"] == [
        {"name": "private", "url": core_index_url, "explicit": True}
    ]
    assert root["tool"]["uv"]["sources"] == {"smplkit-core": {"index": "private"}}
    billing = pyproject(workspace.path / "projects" / "billing")
    assert "index" not in billing["tool"]["uv"]
    assert billing["tool"]["uv"]["sources"] == {"money": {"workspace": True}}


def test_make_lint_and_make_test_are_green(workspace: Workspace, database_url: str) -> None:
    workspace.make("lint")
    output = workspace.make("test", env={"TEST_DATABASE_URL": database_url}).stdout
    for member in ("projects/billing", "projects/ledger", "lib/money"):
        assert f"rootdir: {workspace.path / member}" in output, member
    assert output.count(" passed") == 3, output
    assert_pytest_green(output)


def test_an_undeclared_import_fails_the_members_isolated_import_test(
    workspace: Workspace, tmp_path: Path, database_url: str
) -> None:
    """ledger does not declare money: the root's environment has it (billing does), ledger's
    does not."""
    clone = workspace.clone(tmp_path / "clone")
    module = clone.path / "projects/ledger/src/ledger/rounding.py"
    module.write_text('"""Rounding, with the money library."""\n\nimport money\n\nUNIT = money\n')
    result = clone.make(
        "test", "PACKAGE=ledger", env={"TEST_DATABASE_URL": database_url}, check=False
    )
    assert result.returncode != 0, result.stdout
    assert "test_module_imports[ledger.rounding]" in result.stdout, result.stdout
    assert "No module named 'money'" in result.stdout, result.stdout


CODE = re.compile(r"```[a-z]*\n(.*?)```|`([^`]+)`", re.DOTALL)
"""A README's code: its fenced blocks and its inline spans."""
MAKE_COMMAND = re.compile(
    r"(?<![\w-])make((?: +(?:-[-a-z]+|[a-z][a-z-]*|[A-Z_]+=\"[^\"]*\"|[A-Z_]+=\S+))+)"
)
"""`make`, then its options, targets and VAR=value arguments."""


def make_commands(readme: str) -> set[tuple[str, ...]]:
    """Every make command line a README's code names: its options, targets and variables."""
    code = "\n".join(block or " ".join(span.split()) for block, span in CODE.findall(readme))
    return {tuple(shlex.split(words)) for words in MAKE_COMMAND.findall(code)}


def help_targets(help_text: str) -> set[str]:
    """The targets `make help` lists: the lowercase words that open each line (its descriptions
    begin with a capital)."""
    found = set()
    for line in help_text.splitlines():
        for word in line.split():
            if not re.fullmatch(r"[a-z][a-z-]*", word):
                break
            found.add(word)
    return found


@pytest.mark.parametrize("service", ["billing", "ledger"])
def test_every_make_target_a_member_names_works_in_its_folder(
    workspace: Workspace, service: str
) -> None:
    """The README's make commands and `make help`'s targets, each run with `make -n` in the
    service's folder (the root's recipes for those the member runs there, recursively): none is
    missing. A dry run: the commands behind them are tested where they are built."""
    folder = workspace.path / "projects" / service
    commands = make_commands((folder / "README.md").read_text())
    named = {word for command in commands for word in command if re.fullmatch(r"[a-z-]+", word)}
    assert {
        "install",
        "hooks",
        "check",
        "run",
        "token",
        "update",
        "core-latest",
        "core-rc",
    } <= named
    listed = help_targets(run(["make", "--no-print-directory", "help"], cwd=folder).stdout)
    everyday = {"check", "test", "install", "lock", "run", "token", "hooks", "update"}
    database = {"db", "migrate", "migration"} if service == "ledger" else set()
    assert everyday | database | {"core-latest", "core-bump", "core-rc"} <= listed
    for command in sorted(commands | {(target,) for target in listed}):
        dry_run = ["make", "--no-print-directory", "-n", *command, "COPIER=copier"]
        done = run(dry_run, cwd=folder, check=False)
        assert done.returncode == 0, f"make {shlex.join(command)}: {done.stdout}{done.stderr}"


def test_make_affected_follows_a_library_to_the_service_that_uses_it(
    workspace: Workspace, tmp_path: Path
) -> None:
    """On the generated workspace's own lock: billing uses money, ledger does not."""
    clone = workspace.clone(tmp_path / "clone")
    base = git("rev-parse", "HEAD", cwd=clone.path).strip()
    (clone.path / "lib/money/src/money/__init__.py").write_text('"""Money, in cents."""\n')
    clone.commit("money counts in cents")
    found = json.loads(
        clone.make("--silent", "affected", f"BASE={base}", "AFFECTED_FORMAT=json").stdout
    )
    entries = {entry["member"]: entry for entry in found["include"]}
    assert set(entries) == {"billing", "money"}
    assert entries["billing"]["reasons"] == "uses lib/money"
    assert entries["billing"]["deploy"] is True
    assert entries["money"]["deploy"] is False


@pytest.mark.parametrize(
    ("pin", "where"),
    [
        ('"fastapi==0.115.0",', "projects/billing/pyproject.toml: 'fastapi==0.115.0' pins"),
        (None, "lib/money/uv.lock: a lock below the root"),
    ],
    ids=["a pinned dependency", "a lock below the root"],
)
def test_the_pin_check_refuses_a_members_own_version(
    workspace: Workspace, tmp_path: Path, pin: str | None, where: str
) -> None:
    clone = workspace.clone(tmp_path / "clone")
    clone.make("check-pins")
    if pin:
        billing = clone.path / "projects/billing/pyproject.toml"
        billing.write_text(billing.read_text().replace('"fastapi>=0.115",', pin))
    else:
        shutil.copy(clone.path / "uv.lock", clone.path / "lib/money/uv.lock")
    result = clone.make("lint", check=False)
    assert result.returncode != 0
    assert where in result.stderr, result.stderr


def test_hadolint_finds_nothing_in_the_generic_dockerfile(workspace: Workspace) -> None:
    """No finding at any level, ignore pragmas disabled (as for a service's Dockerfile)."""
    hadolint = [dev_tool("hadolint"), "--no-color", "--format", "json", "--disable-ignore-pragma"]
    result = run(
        [*hadolint, "Dockerfile"],
        cwd=workspace.path,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert json.loads(result.stdout) == []


def test_the_libraries_are_owned_by_the_reviewers_of_shared_code(workspace: Workspace) -> None:
    """The platform setting shared_code_reviewers, recorded at the root, owns lib/."""
    reviewers = workspace.answers()["shared_code_reviewers"]
    assert reviewers == "@your-org/platform-reviewers"
    rules = [
        line.split()
        for line in (workspace.path / ".github" / "CODEOWNERS").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert rules == [["/lib/", reviewers]]
