"""`fleet test-core` on a real local fleet (harness.fleet.build_core_fleet): five single-service
repositories and a workspace, as bare git repositories, each service's own `make check` run against
a candidate core built from a changed copy of core/.

One fleet for the module, tried once with a compatible candidate and once with a breaking one;
the tests read those two runs.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tomllib
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from fleet.candidate import NOT_SOURCE, CandidateError, build_candidate
from fleet.trial import first_failure
from harness.commands import REPO_ROOT, git, run
from harness.core_index import CORE_PROJECT, DECLARES_A_NEW_RESPONSE, core_variant
from harness.fleet import CALLER_TEST, CALLERS, CoreFleet, build_core_fleet
from harness.template_repo import commit_all
from tests.tools import require_tool
from tests.workflow_runner import (
    ActionEmulator,
    Emulated,
    FakeCommands,
    WorkflowRunner,
    emulated_actions,
)

pytestmark = pytest.mark.xdist_group("core-fleet")

CORE_VERSION = tomllib.loads((CORE_PROJECT / "pyproject.toml").read_text())["project"]["version"]
LABEL = "pr123"
CANDIDATE = f"{CORE_VERSION}+{LABEL}"
COMPATIBLE = {
    # An addition: a minor change every service takes, and one that changes the OpenAPI document
    # each serves (the check writes it again first, as the core-bump workflow does).
    "src/smplcore/__init__.py": (
        "from smplcore.app import install_core\n",
        "from smplcore.app import install_core\n\nFLEET_TRIED = True\n",
    ),
    **DECLARES_A_NEW_RESPONSE,
}
RENAMED = {
    # issue_internal_token renamed in the package's public names (the core's own modules keep it).
    "src/smplcore/__init__.py": (
        "    issue_internal_token,\n",
        "    issue_internal_token as mint_internal_token,\n",
    )
}


@dataclass
class Run:
    done: subprocess.CompletedProcess[str]
    output: Path

    @property
    def lines(self) -> dict[str, dict[str, Any]]:
        document = json.loads((self.output / "test-core.json").read_text())
        return {line["service"]: line for line in document["services"]}


def index_folder(url: str) -> Path:
    return Path(urllib.request.url2pathname(urllib.parse.urlsplit(url).path))


def state(fleet: CoreFleet) -> dict[str, str]:
    """Every remote's refs, and every file of the core's index: what nothing may change."""
    refs = {name: git("for-each-ref", cwd=remote) for name, remote in fleet.remotes.items()}
    index = index_folder(fleet.index_url)
    files = sorted(str(path.relative_to(index)) for path in index.rglob("*"))
    return {**refs, "index": "\n".join(files)}


def try_core(fleet: CoreFleet, core: Path, output: Path, *extra: str) -> Run:
    done = run(
        [
            sys.executable, "-m", "fleet", "test-core", "--core", str(core), "--label", LABEL,
            "--fleet", str(fleet.fleet_file), "--output", str(output), "--jobs", "2", *extra,
        ],
        cwd=fleet.root,
        check=False,
        timeout=1200,
    )  # fmt: skip
    return Run(done, output)


@pytest.fixture(scope="module")
def core_fleet(
    tmp_path_factory: pytest.TempPathFactory, template_repo: Path, core_index_url: str
) -> CoreFleet:
    return build_core_fleet(tmp_path_factory.mktemp("core-fleet"), template_repo, core_index_url)


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory, core_fleet: CoreFleet) -> dict[str, Any]:
    """The fleet tried with a compatible candidate, then a breaking one; the fleet's state before
    and after."""
    work = tmp_path_factory.mktemp("candidates")
    before = state(core_fleet)
    compatible = try_core(
        core_fleet, core_variant(work / "compatible", CORE_VERSION, COMPATIBLE), work / "ok"
    )
    breaking = try_core(
        core_fleet, core_variant(work / "breaking", CORE_VERSION, RENAMED), work / "broken"
    )
    return {"compatible": compatible, "breaking": breaking, "before": before}


def test_a_compatible_candidate_passes_every_service(
    core_fleet: CoreFleet, runs: dict[str, Any]
) -> None:
    compatible: Run = runs["compatible"]
    assert compatible.done.returncode == 0, compatible.done.stdout + compatible.done.stderr
    lines = compatible.lines
    assert len(core_fleet.services) >= 6
    assert sorted(lines) == sorted(core_fleet.services), "the workspace's library has no core"
    for name, line in lines.items():
        assert line["status"] == "passed", (name, line)
        assert (line["core_locked"], line["candidate"]) == (CORE_VERSION, CANDIDATE), name
        assert line["moved"] == [], "the candidate moves the core alone"
        log = (compatible.output / "logs" / line["log"]).read_text()
        assert " passed" in log, name


def test_a_renamed_public_function_fails_exactly_the_services_calling_it(
    core_fleet: CoreFleet, runs: dict[str, Any]
) -> None:
    breaking: Run = runs["breaking"]
    assert breaking.done.returncode == 1, breaking.done.stdout + breaking.done.stderr
    lines = breaking.lines
    failed = {name: line["detail"] for name, line in lines.items() if line["status"] == "failed"}
    assert sorted(failed) == sorted(CALLERS)
    for name, detail in failed.items():
        assert detail.startswith(f"{CALLER_TEST}: ImportError: cannot import name "), name
        assert "'issue_internal_token' from 'smplcore'" in detail, name
    passed = sorted(name for name, line in lines.items() if line["status"] == "passed")
    assert passed == sorted(set(core_fleet.services) - set(CALLERS))
    # The table names them too, in the terminal and in Markdown (the pull request's summary).
    markdown = (breaking.output / "test-core.md").read_text()
    assert f"smplkit-core {CANDIDATE}: 3 passed, 3 failed, 0 could not run." in markdown
    for name in CALLERS:
        assert f"| {name} | failed | {CALLER_TEST}: ImportError" in markdown
        assert name in breaking.done.stdout


def test_nothing_is_published_and_no_repository_changes(
    core_fleet: CoreFleet, runs: dict[str, Any]
) -> None:
    assert state(core_fleet) == runs["before"]


def test_a_service_s_own_lock_never_resolves_the_candidate(
    core_fleet: CoreFleet, runs: dict[str, Any], tmp_path: Path
) -> None:
    """The candidate lived on a throwaway index: the service's own index never holds it."""
    assert runs["compatible"].lines["orders"]["candidate"] == CANDIDATE
    service = tmp_path / "orders"
    git("clone", "--quiet", str(core_fleet.remotes["orders"]), str(service), cwd=tmp_path)
    pinned = run(
        ["uv", "lock", "--upgrade-package", f"smplkit-core=={CANDIDATE}"], cwd=service, check=False
    )
    assert pinned.returncode != 0
    assert f"smplkit-core=={CANDIDATE}" in pinned.stderr, pinned.stderr
    run(["uv", "lock", "--upgrade-package", "smplkit-core"], cwd=service)
    assert (
        f'name = "smplkit-core"\nversion = "{CORE_VERSION}"\n' in (service / "uv.lock").read_text()
    )


def test_only_and_a_repository_that_cannot_be_read(core_fleet: CoreFleet, tmp_path: Path) -> None:
    fleet_file = tmp_path / "fleet.yml"
    fleet_file.write_text(f"services:\n  - {core_fleet.remotes['orders']}\n  - {tmp_path}/gone\n")
    done = run(
        [
            sys.executable, "-m", "fleet", "test-core", "--core", str(CORE_PROJECT),
            "--label", LABEL, "--fleet", str(fleet_file), "--output", str(tmp_path / "out"),
            "--only", "gone",
        ],
        cwd=tmp_path,
        check=False,
    )  # fmt: skip
    assert done.returncode == 0, "a repository that cannot be tried fails only with --strict"
    (line,) = Run(done, tmp_path / "out").lines.values()
    assert (line["service"], line["status"]) == ("gone", "could not run")
    assert line["detail"].startswith("unreachable: ")


def test_the_candidate_is_built_from_a_git_reference(tmp_path: Path) -> None:
    candidate = build_candidate(CORE_PROJECT, "pr9", tmp_path, ref="HEAD")
    committed = tomllib.loads(git("show", "HEAD:core/pyproject.toml", cwd=REPO_ROOT))
    assert candidate.version == f"{committed['project']['version']}+pr9"
    assert candidate.wheel.name == f"smplkit_core-{candidate.version}-py3-none-any.whl"
    page = (index_folder(candidate.index_url) / "smplkit-core" / "index.html").read_text()
    assert f'href="{candidate.wheel.name}#sha256=' in page


@pytest.mark.parametrize(
    ("label", "message"),
    [("PR-1", "not a local version label"), ("pr_1", "not a local version label")],
)
def test_a_bad_label_is_refused_before_anything_is_built(
    tmp_path: Path, label: str, message: str
) -> None:
    with pytest.raises(CandidateError, match=message):
        build_candidate(CORE_PROJECT, label, tmp_path)
    assert list(tmp_path.iterdir()) == []


# The core's pull-request workflow (.github/workflows/core-fleet.yml), its scripts run for real
# against fake gh and aws.

WORKFLOW_FLEET = ("acme/orders", "acme/billing")
PULL_REQUEST = 123


def template_checkout(destination: Path, fleet: tuple[str, ...]) -> Path:
    """What the workflow checks out: the repository's workflows, fleet command and core, its
    fleet.yml listing `fleet`; main at this state (origin/main), the pull request's HEAD too."""
    destination.mkdir()
    for name in (".github", "fleet", "core"):
        shutil.copytree(REPO_ROOT / name, destination / name, ignore=NOT_SOURCE)
    for name in ("pyproject.toml", "uv.lock"):
        shutil.copy2(REPO_ROOT / name, destination / name)
    (destination / "fleet.yml").write_text(
        "services:\n" + "".join(f"  - {name}\n" for name in fleet)
    )
    git("init", "--quiet", "--initial-branch=main", cwd=destination)
    commit_all(destination, "main")
    git("update-ref", "refs/remotes/origin/main", "HEAD", cwd=destination)
    return destination


def run_workflow(checkout: Path, fakes: FakeCommands) -> tuple[WorkflowRunner, dict[str, Any]]:
    nothing: ActionEmulator = lambda _: Emulated()  # noqa: E731 - an action with no effect here
    runner = WorkflowRunner(
        checkout,
        fakes,
        emulated_actions() | {"actions/setup-python": nothing},
        github={
            "event_name": "pull_request",
            "base_ref": "main",
            "event": {"pull_request": {"number": PULL_REQUEST}},
            "sha": git("rev-parse", "HEAD", cwd=checkout).strip(),
            "ref": f"refs/pull/{PULL_REQUEST}/merge",
            "repository": "acme/service-template",
            "run_id": 7,
        },
        secrets={"FLEET_READ_TOKEN": "token-with-contents-read"},
        variables={
            "AWS_INDEX_READ_ROLE_ARN": "arn:aws:iam::123456789012:role/index-read",
            "CODEARTIFACT_DOMAIN": "smplkit",
            "CODEARTIFACT_DOMAIN_OWNER": "123456789012",
            "CODEARTIFACT_REGION": "us-east-1",
        },
    )
    return runner, runner.run("core-fleet.yml")


def test_the_core_s_pull_request_tries_every_repository_of_the_fleet(
    core_fleet: CoreFleet, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    require_tool("yq", "install yq (Debian: apt-get install yq); GitHub's runners have it")
    require_tool("jq", "install jq (Debian: apt-get install jq); GitHub's runners have it")
    checkout = template_checkout(tmp_path / "template", WORKFLOW_FLEET)
    init = checkout / "core" / "src" / "smplcore" / "__init__.py"
    init.write_text(init.read_text().replace(*RENAMED["src/smplcore/__init__.py"], 1))
    commit_all(checkout, "Rename issue_internal_token")
    # The fleet's GitHub names are its local remotes.
    remotes = core_fleet.remotes["orders"].parent.as_uri()
    monkeypatch.setenv("GIT_CONFIG_COUNT", "1")
    monkeypatch.setenv("GIT_CONFIG_KEY_0", f"url.{remotes}/.insteadOf")
    monkeypatch.setenv("GIT_CONFIG_VALUE_0", "https://github.com/acme/")
    fakes = FakeCommands(tmp_path / "fakes", ("gh", "aws"))
    fakes.answer(r"^aws codeartifact get-authorization-token ", "token-from-codeartifact\n")

    runner, results = run_workflow(checkout, fakes)

    assert results["fleet"].result == "success", results["fleet"].log
    legs = {entry["repository"]: leg.result for entry, leg in results["try"].legs}
    assert legs == {"acme/orders": "success", "acme/billing": "failure"}, results["try"].log
    assert results["verdict"].result == "failure"
    summary = runner.summary.read_text()
    assert f"# The fleet on smplkit-core {CORE_VERSION}+pr{PULL_REQUEST}" in summary
    assert "| acme/orders | passed |" in summary
    assert f"| acme/billing | failed | {CALLER_TEST}: ImportError: cannot import name" in summary
    assert "::group::acme_billing.log" in results["try"].log, "the failing service's log"
    assert len(fakes.calls(r"^gh auth setup-git$")) == len(WORKFLOW_FLEET)
    for call in fakes.calls(r"^aws codeartifact get-authorization-token "):
        assert call.args[call.args.index("--domain") + 1] == "smplkit"


def test_a_pull_request_leaving_the_core_alone_tries_nothing_and_passes(tmp_path: Path) -> None:
    require_tool("yq", "install yq (Debian: apt-get install yq); GitHub's runners have it")
    checkout = template_checkout(tmp_path / "template", WORKFLOW_FLEET)
    (checkout / "README.md").write_text("# A change elsewhere\n")
    commit_all(checkout, "Docs")
    fakes = FakeCommands(tmp_path / "fakes", ("gh", "aws"))
    _, results = run_workflow(checkout, fakes)
    assert results["fleet"].outputs["any"] == "false"
    assert results["try"].result == "skipped"
    assert results["verdict"].result == "success"
    assert fakes.calls(r"^(gh|aws) ") == []


@pytest.mark.parametrize(
    ("output", "first"),
    [
        (
            "E   assert 1 == 2\nFAILED tests/test_a.py::test_b - assert 1 == 2\n"
            "FAILED tests/test_a.py::test_c\n",
            "tests/test_a.py::test_b (and 1 more): assert 1 == 2",
        ),
        (
            'src/orders/x.py:3: error: Name "y" is not defined  [name-defined]\nFound 1 error\n',
            'src/orders/x.py:3: error: Name "y" is not defined  [name-defined]',
        ),
        (
            "E501 Line too long (108 > 100)\n  --> src/orders/x.py:3:101\n   |\n",
            "src/orders/x.py:3:101: E501 Line too long (108 > 100)",
        ),
        ("make: *** [Makefile:60: check] Error 2\n", "make: *** [Makefile:60: check] Error 2"),
    ],
    ids=["a failing test", "mypy", "ruff", "anything else"],
)
def test_a_failure_is_named_by_what_failed_first(output: str, first: str) -> None:
    assert first_failure(output) == first
