"""Shared code beyond the one lock: a workspace's library published to the private index for a
single-service repository (semver checked by the API rule the core is released by), and a member
isolated with its own lock when its dependencies conflict with the rest.

One workspace for the module, with a private index of its own (a copy of the core's): billing and
legacy, both using the money library, billing needing humanize>=4. Tests that change it work on a
git clone of it.
"""

from __future__ import annotations

import json
import shutil
import sys
import tomllib
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from harness.commands import git, run
from harness.core_index import CORE_PROJECT
from harness.generate import copy
from harness.workspace import Workspace, generate_workspace
from tests.workflow_runner import FakeCommands, WorkflowRunner, emulated_actions

pytestmark = pytest.mark.xdist_group("workspace-libraries")

MONEY = '''"""Money, in cents."""


def cents(amount: float) -> int:
    """The amount in whole cents."""
    return round(amount * 100)
'''
MONEY_ADDITION = '''

def euros(amount_in_cents: int) -> float:
    """The amount in euros."""
    return amount_in_cents / 100
'''
PRICES = '''"""Prices, with the money library of the platform workspace."""

from money import cents


def price_in_cents(amount: float) -> int:
    """A price as the ledger keeps it."""
    return cents(amount)
'''
PRICES_TEST = '''"""Prices in cents."""

from orders.prices import price_in_cents


def test_a_price_is_kept_in_cents() -> None:
    assert price_in_cents(12.34) == 1234
'''


def index_folder(url: str) -> Path:
    return Path(urllib.request.url2pathname(urllib.parse.urlsplit(url).path))


def published(index: Path, project: str) -> list[str]:
    """The project's files on the index."""
    folder = index / project
    return sorted(path.name for path in folder.glob(f"{project}-*")) if folder.exists() else []


def pyproject(folder: Path) -> dict[str, Any]:
    return tomllib.loads((folder / "pyproject.toml").read_text())


@pytest.fixture(scope="module")
def private_index(tmp_path_factory: pytest.TempPathFactory, core_index_url: str) -> str:
    """A copy of the core's index that this module's publishing may write to."""
    folder = tmp_path_factory.mktemp("private-index") / "simple"
    shutil.copytree(index_folder(core_index_url), folder)
    return folder.as_uri()


@pytest.fixture(scope="module")
def workspace(
    tmp_path_factory: pytest.TempPathFactory, template_repo: Path, private_index: str
) -> Workspace:
    created = generate_workspace(
        template_repo,
        tmp_path_factory.mktemp("workspace") / "platform",
        {"core_index_url": private_index},
    )
    created.make("service", "NAME=billing")
    created.make("service", "NAME=legacy")
    created.make("lib", "NAME=money")
    (created.path / "lib/money/src/money/__init__.py").write_text(MONEY)
    created.make("add-lib", "SERVICE=billing", "LIB=money")
    created.make("add-lib", "SERVICE=legacy", "LIB=money")
    run(["uv", "add", "--quiet", "--package", "billing", "humanize>=4"], cwd=created.path)
    created.commit("billing and legacy use money; billing needs humanize 4")
    return created


# Where one lock can't hold: an isolated member.


@pytest.fixture(scope="module")
def isolated(workspace: Workspace, tmp_path_factory: pytest.TempPathFactory) -> Workspace:
    """legacy isolated (`make isolate`), then given humanize<4 in its own lock."""
    clone = workspace.clone(tmp_path_factory.mktemp("isolated") / "platform")
    clone.make("isolate", "SERVICE=legacy")
    run(["uv", "add", "--quiet", "humanize<4"], cwd=clone.path / "projects" / "legacy")
    clone.commit("legacy, isolated, keeps humanize 3")
    return clone


def locked(lock: Path) -> dict[str, dict[str, Any]]:
    return {package["name"]: package for package in tomllib.loads(lock.read_text())["package"]}


def test_a_conflicting_pin_cannot_join_the_one_lock(workspace: Workspace, tmp_path: Path) -> None:
    clone = workspace.clone(tmp_path / "platform")
    result = run(["uv", "add", "--package", "legacy", "humanize<4"], cwd=clone.path, check=False)
    assert result.returncode != 0
    assert "No solution found" in result.stderr, result.stderr
    assert git("status", "--porcelain", cwd=clone.path) == "", "nothing is changed"


def test_an_isolated_member_has_its_own_lock_and_the_rest_stay_under_one(
    isolated: Workspace,
) -> None:
    root = locked(isolated.path / "uv.lock")
    own = locked(isolated.path / "projects" / "legacy" / "uv.lock")
    assert "legacy" not in root
    assert {"billing", "money"} <= root.keys()
    assert root["humanize"]["version"].startswith("4.")
    assert own["humanize"]["version"].startswith("3.")
    assert own["money"]["source"] == {"directory": "../../lib/money"}, "the library itself"
    assert own["smplkit-core"]["source"]["registry"] == root["smplkit-core"]["source"]["registry"]
    sources = pyproject(isolated.path / "projects" / "legacy")["tool"]["uv"]["sources"]
    assert sources["money"] == {"path": "../../lib/money", "editable": False}
    assert pyproject(isolated.path)["tool"]["uv"]["workspace"]["exclude"] == ["projects/legacy"]

    lint = isolated.make("lint")
    assert "projects/legacy: isolated, the exception to the one lock" in lint.stdout
    check = isolated.make("check", "PACKAGE=legacy")
    assert " passed" in check.stdout
    environment = isolated.path / ".venvs" / "legacy"
    installed = run(
        [str(environment / "bin" / "python"), "-c",
         "import humanize, money; print(humanize.__version__, money.__file__)"],
    ).stdout.split()  # fmt: skip
    assert installed[0].startswith("3.")
    assert installed[1].startswith(str(environment)), "money installed as a package, not editable"


def test_every_other_lock_below_the_root_is_still_refused(
    isolated: Workspace, tmp_path: Path
) -> None:
    clone = isolated.clone(tmp_path / "platform")
    shutil.copy(clone.path / "uv.lock", clone.path / "projects" / "billing" / "uv.lock")
    result = clone.make("lint", check=False)
    assert result.returncode != 0
    assert "projects/billing/uv.lock: a lock below the root" in result.stderr
    assert "projects/legacy/uv.lock" not in result.stderr
    refused = clone.make("isolate", "SERVICE=money", check=False)
    assert refused.returncode != 0
    assert "only a service can be isolated" in refused.stderr


def affected_members(clone: Workspace, base: str) -> dict[str, str]:
    found = json.loads(
        clone.make("--silent", "affected", f"BASE={base}", "AFFECTED_FORMAT=json").stdout
    )
    return {entry["member"]: entry["reasons"] for entry in found["include"]}


def test_make_affected_follows_the_isolated_member_s_own_lock(
    isolated: Workspace, tmp_path: Path
) -> None:
    clone = isolated.clone(tmp_path / "platform")
    base = git("rev-parse", "HEAD", cwd=clone.path).strip()
    money = clone.path / "lib/money/src/money/__init__.py"
    money.write_text(money.read_text() + MONEY_ADDITION)
    clone.commit("money converts back")
    assert affected_members(clone, base) == {
        "billing": "uses lib/money",
        "legacy": "uses lib/money",
        "money": "own files",
    }
    run(
        ["uv", "lock", "--quiet", "--upgrade-package", "humanize==3.13.1"],
        cwd=clone.path / "projects/legacy",
    )
    assert affected_members(clone, "HEAD") == {
        "legacy": "own files; its locked closure changed: humanize 3.14.0 → 3.13.1"
    }, "its own lock is its own file, and moves nothing of the others"


def test_fleet_lists_and_tries_the_isolated_member(isolated: Workspace, tmp_path: Path) -> None:
    fleet_file = tmp_path / "fleet.yml"
    fleet_file.write_text(f"services:\n  - {isolated.path}\n")
    report = run(
        [sys.executable, "-m", "fleet", "report", "--fleet", str(fleet_file), "--output",
         str(tmp_path / "report")],
    )  # fmt: skip
    lines = {
        line["service"]: line
        for line in json.loads((tmp_path / "report" / "fleet.json").read_text())["services"]
    }
    assert lines["platform/projects/legacy"]["layout"] == "workspace, isolated (own lock)"
    assert lines["platform/projects/billing"]["layout"] == "workspace"
    assert "workspace, isolated (own lock)" in report.stdout
    tried = run(
        [sys.executable, "-m", "fleet", "test-core", "--core", str(CORE_PROJECT), "--label", "pr1",
         "--fleet", str(fleet_file), "--output", str(tmp_path / "tried"),
         "--only", "platform/projects/legacy"],
    )  # fmt: skip
    document = json.loads((tmp_path / "tried" / "test-core.json").read_text())
    (line,) = document["services"]
    assert (line["service"], line["status"]) == ("platform/projects/legacy", "passed"), tried.stdout
    assert line["candidate"] == document["candidate"]


# A library published to the private index, for a single-service repository.


def publish(clone: Workspace, *extra: str, check: bool = True) -> Any:
    return clone.make("publish-lib", "LIB=money", *extra, check=check)


def set_version(clone: Workspace, version: str) -> None:
    project = clone.path / "lib/money/pyproject.toml"
    text = project.read_text()
    current = pyproject(clone.path / "lib/money")["project"]["version"]
    project.write_text(text.replace(f'version = "{current}"', f'version = "{version}"', 1))
    clone.make("lock")


def test_a_published_library_serves_a_service_and_a_breaking_minor_is_refused(
    workspace: Workspace,
    private_index: str,
    template_repo: Path,
    tmp_path: Path,
) -> None:
    index = index_folder(private_index)
    clone = workspace.clone(tmp_path / "platform")
    first = publish(clone)
    assert "money 0.1.0 is its first release on the index" in first.stdout
    assert published(index, "money") == ["money-0.1.0-py3-none-any.whl", "money-0.1.0.tar.gz"]
    again = publish(clone, check=False)
    assert again.returncode != 0
    assert "money 0.1.0 is on the index already: raise the version" in again.stderr

    # A single-service repository depends on it through the explicit index, like the core.
    service = tmp_path / "orders"
    copy(template_repo, service, {"core_index_url": private_index})
    run(["uv", "add", "--quiet", "money>=0.1,<1", "--index", "private"], cwd=service)
    (service / "src/orders/prices.py").write_text(PRICES)
    (service / "tests/test_prices.py").write_text(PRICES_TEST)
    assert pyproject(service)["tool"]["uv"]["sources"]["money"] == {"index": "private"}
    assert locked(service / "uv.lock")["money"]["version"] == "0.1.0"
    assert "test_prices.py ." in run(["make", "check"], cwd=service).stdout
    git("add", "--all", cwd=service)
    git("commit", "--quiet", "--no-verify", "-m", "Prices in cents", cwd=service)

    # A breaking minor: refused by the API check, nothing published.
    money = clone.path / "lib/money/src/money/__init__.py"
    money.write_text(MONEY.replace("def cents(", "def to_cents("))
    set_version(clone, "0.2.0")
    breaking = publish(clone, check=False)
    assert breaking.returncode != 0
    assert (
        "money goes from 0.1.0 to 0.2.0, not a major release, but its public API" in breaking.stderr
    )
    assert "money.cents: Public object was removed" in breaking.stderr
    assert "or release money as 1.0.0" in breaking.stderr
    assert not [name for name in published(index, "money") if "0.2.0" in name]

    # A compatible minor is published, and the fleet report shows the service lagging it.
    money.write_text(MONEY + MONEY_ADDITION)
    compatible = publish(clone)
    assert "money goes from 0.1.0 to 0.2.0 without breaking its public API" in compatible.stdout
    fleet_file = tmp_path / "fleet.yml"
    fleet_file.write_text(f"services:\n  - {service}\n")
    run(
        [sys.executable, "-m", "fleet", "report", "--fleet", str(fleet_file), "--output",
         str(tmp_path / "report")],
    )  # fmt: skip
    (line,) = json.loads((tmp_path / "report" / "fleet.json").read_text())["services"]
    assert line["libraries"] == [
        {"name": "money", "range": "<1,>=0.1", "locked": "0.1.0", "newest": "0.2.0", "behind": True}
    ]
    assert "money 0.1.0 / 0.2.0 (behind)" in (tmp_path / "report" / "fleet.md").read_text()


def test_the_publish_workflow_checks_then_publishes_the_tagged_library(
    workspace: Workspace, private_index: str, tmp_path: Path
) -> None:
    clone = workspace.clone(tmp_path / "platform")
    (clone.path / "lib/money/src/money/__init__.py").write_text(MONEY + MONEY_ADDITION)
    set_version(clone, "0.3.0")
    clone.commit("money 0.3.0")
    fakes = FakeCommands(tmp_path / "fakes", ("aws",))
    fakes.answer(r"^aws codeartifact get-authorization-token ", "token-from-codeartifact\n")
    runner = WorkflowRunner(
        clone.path,
        fakes,
        emulated_actions(),
        github={
            "event_name": "push",
            "ref": "refs/tags/lib/money/v0.3.0",
            "ref_name": "lib/money/v0.3.0",
            "sha": git("rev-parse", "HEAD", cwd=clone.path).strip(),
            "repository": "acme/platform",
            "run_id": 11,
        },
    )
    results = runner.run("publish-lib.yml")
    assert results["publish"].result == "success", results["publish"].log
    assert "money-0.3.0-py3-none-any.whl" in published(index_folder(private_index), "money")
    (call,) = fakes.calls(r"^aws codeartifact get-authorization-token ")
    assert call.args[call.args.index("--domain") + 1] == "smplkit"
    assert "test_imports.py" in results["publish"].log, "its checks ran first"
    mistagged = publish(clone, "TAG=lib/money/v0.4.0", check=False)
    assert mistagged.returncode != 0
    assert "does not name lib/money's version: lib/money/v0.3.0" in mistagged.stderr
