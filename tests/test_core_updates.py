"""Every service on the newest core: `make core-latest`, `make core-bump`, `make core-rc` and the
pre-release guard, on one generated service and a real local index holding several core releases;
the bump and release workflows run against fake `gh` and `aws`; the core's API-diff check (griffe)
and the services' range against the core's major version.

The service is generated while the index holds only 1.1.0 (so its uv.lock holds 1.1.0); then
1.2.0, 1.3.0rc1 and 2.0.0 are published next to it, each declaring one more error response, which
changes the service's OpenAPI document (no break: every check passes once openapi.json is written
again). The tests run in the order written.
"""

from __future__ import annotations

import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from packaging.specifiers import SpecifierSet
from packaging.version import Version

from harness.commands import REPO_ROOT, git, run, tool_env
from harness.core_index import CORE_PROJECT, publish_core_versions
from harness.generate import copy
from tests.core_update_support import (
    BREAKING,
    CORE,
    NEWER_RELEASES,
    BumpScenario,
    bump_scenario,
    core_latest,
    declares_the_new_response,
    failing_pull_request,
    make,
    notify_services,
    one_self_merging_pull_request,
    release_checkout,
    release_core,
)
from tests.services import GeneratedService, uv_python
from tests.tools import dev_tool, load_workflow

pytestmark = pytest.mark.xdist_group("core-updates")


@dataclass(frozen=True)
class Fleet:
    index: Path
    work: Path
    service: GeneratedService

    def publish(self, versions: dict[str, dict[str, tuple[str, str]]]) -> None:
        publish_core_versions(self.index, self.work, versions)


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory, template_repo: Path) -> Fleet:
    work = tmp_path_factory.mktemp("core-updates")
    index = work / "simple"
    url = publish_core_versions(index, work, {"1.1.0": {}})
    answers = {"core_index_url": url}
    copy(template_repo, work / "service", answers, env=uv_python(answers))
    service = GeneratedService(work / "service")
    assert locked_core(service) == "1.1.0"
    publish_core_versions(index, work, NEWER_RELEASES)
    return Fleet(index, work, service)


def locked_core(service: GeneratedService) -> str:
    lock = (service.path / "uv.lock").read_text()
    entry = lock.split(f'name = "{CORE}"\nversion = "', 1)[1]
    return entry.split('"', 1)[0]


def test_core_latest_checks_the_newest_final_release_in_range_and_keeps_the_lock(
    fleet: Fleet,
) -> None:
    """1.2.0 changes the OpenAPI document: the copy's openapi.json is written again before the
    checks, so that only a break fails them."""
    code, output = core_latest(fleet.service.path)
    assert code == 0, output
    assert f"Checking {CORE} 1.2.0 (uv.lock holds 1.1.0)" in output
    assert f"passes its checks on {CORE} 1.2.0" in output
    assert " passed" in output
    assert "1.3.0rc1" not in output
    assert "2.0.0" not in output


def test_core_bump_moves_the_lock_to_the_newest_final_release_in_range(fleet: Fleet) -> None:
    code, output = make(fleet.service.path, "core-bump")
    assert code == 0, output
    assert locked_core(fleet.service) == "1.2.0"
    assert " passed" in output
    assert declares_the_new_response((fleet.service.path / "openapi.json").read_text())
    git("checkout", "uv.lock", "openapi.json", cwd=fleet.service.path)


def test_core_rc_tests_the_candidate_and_the_guard_refuses_it_until_the_lock_is_final(
    fleet: Fleet,
) -> None:
    code, output = make(fleet.service.path, "core-rc", "VERSION=1.3.0rc1")
    assert code == 0, output
    assert locked_core(fleet.service) == "1.3.0rc1"
    assert " passed" in output
    lock = (fleet.service.path / "uv.lock").read_text()
    core_entry = f'name = "{CORE}"\nversion = "1.3.0rc1"\nsource = {{ registry = "{fleet.index}" }}'
    assert core_entry in lock  # from the private index, as the explicit-index pin says

    code, output = make(fleet.service.path, "check")
    assert code != 0
    assert f"uv.lock holds {CORE} 1.3.0rc1, a pre-release" in output
    assert " passed" not in output  # refused before anything else runs

    git("checkout", "uv.lock", "openapi.json", cwd=fleet.service.path)
    code, output = make(fleet.service.path, "core-release-guard")
    assert code == 0, output


# core-bump.yml, run against fake `gh` and `aws` on a clone of the service.


@pytest.fixture(scope="module")
def bump(fleet: Fleet) -> BumpScenario:
    return bump_scenario(fleet.service.path, fleet.work)


def test_the_bump_workflow_runs_daily_on_demand_and_when_a_core_is_released(fleet: Fleet) -> None:
    document = load_workflow(fleet.service.path / ".github" / "workflows" / "core-bump.yml")
    assert set(document["on"]) == {"schedule", "repository_dispatch", "workflow_dispatch"}
    assert document["on"]["repository_dispatch"] == {"types": ["core-released"]}


def test_the_bump_workflow_opens_one_self_merging_pull_request_per_version(
    bump: BumpScenario,
) -> None:
    job = one_self_merging_pull_request(bump, "1.2.0", ["openapi.json"])
    assert " passed" in job.log


@pytest.fixture(scope="module")
def breaking_release(fleet: Fleet) -> str:
    """1.2.1, published next to the others, breaks the service (the tests after the first that
    asks for it see it on the index)."""
    fleet.publish({"1.2.1": BREAKING})
    return "1.2.1"


def test_a_breaking_release_fails_core_latest_naming_it_and_the_locked_version(
    fleet: Fleet, breaking_release: str
) -> None:
    code, output = core_latest(fleet.service.path)
    assert code != 0
    assert f"{CORE} {breaking_release} breaks the service (uv.lock holds 1.1.0)" in output
    assert "install_core" in output


def test_the_bump_workflow_labels_a_pull_request_whose_checks_fail(
    breaking_release: str, bump: BumpScenario
) -> None:
    failing_pull_request(bump, breaking_release)


def test_the_template_never_installs_the_core_with_uv_run_with(template_repo: Path) -> None:
    """`uv run --with <core>==...` asks the public indexes too (dependency confusion): no command
    or document of the template uses it."""
    found = run(
        ["git", "grep", "-nE", r"uv (run|tool run)[^\n]*--with|uvx[^\n]*--with ", "--", "template"],
        cwd=template_repo,
        check=False,
    )
    assert found.stdout == ""


# The template repository's release: semver of the core's API, and every service told.


@pytest.fixture
def template_checkout(tmp_path: Path) -> Path:
    return release_checkout(tmp_path / "template")


def core_api_check(checkout: Path) -> tuple[int, str]:
    griffe = Path(dev_tool("griffe")).parent
    result = run(
        [sys.executable, ".github/scripts/release.py", "core-api"],
        cwd=checkout,
        env={"PATH": f"{griffe}:{tool_env()['PATH']}"},
        check=False,
    )
    return result.returncode, result.stdout + result.stderr


COMPATIBLE = {
    # 1.2.0 adds a public name.
    "src/smplcore/__init__.py": (
        "from smplcore.app import install_core\n",
        "from smplcore.app import install_core\n\nADDED = 1\n",
    ),
}


def test_the_core_api_check_refuses_a_breaking_change_in_a_minor_release(
    template_checkout: Path,
) -> None:
    release_core(template_checkout, "1.2.0", BREAKING)
    code, output = core_api_check(template_checkout)
    assert code == 1, output
    assert "to 1.2.0, not a major release" in output
    assert "install_core" in output
    assert "release the core as 2.0.0" in output


@pytest.mark.parametrize(
    ("version", "change", "verdict"),
    [
        ("1.2.0", COMPATIBLE, "from 1.1.0 to 1.2.0 without breaking its public API"),
        ("2.0.0", BREAKING, "from 1.1.0 to 2.0.0, a major release"),
    ],
    ids=["compatible-minor", "breaking-major"],
)
def test_the_core_api_check_accepts_a_compatible_minor_or_a_major_release(
    template_checkout: Path, version: str, change: dict[str, tuple[str, str]], verdict: str
) -> None:
    release_core(template_checkout, version, change)
    code, output = core_api_check(template_checkout)
    assert code == 0, output
    assert verdict in output


def test_the_release_tells_every_service_in_the_fleet_about_the_core(
    template_checkout: Path, tmp_path: Path
) -> None:
    services = ["example/orders", "example/billing-events"]
    dispatches = notify_services(template_checkout, services, tmp_path / "fakes")
    assert dispatches == [
        [
            "api", "--method", "POST", f"repos/{service}/dispatches", "--silent",
            "-f", "event_type=core-released", "-f", "client_payload[version]=1.1.0",
        ]
        for service in services
    ]  # fmt: skip


def test_the_services_range_admits_the_cores_major_version_only() -> None:
    """copier.yml's `core_version` and the core's major version move together: a new service gets
    the current core, and never the next major one before the template says it may."""
    copier = yaml.safe_load((REPO_ROOT / "copier.yml").read_text())
    accepted = SpecifierSet(copier["core_version"]["default"])
    core = Version(
        tomllib.loads((CORE_PROJECT / "pyproject.toml").read_text())["project"]["version"]
    )
    assert core in accepted, f"copier.yml's core_version {accepted} refuses the core {core}"
    assert Version(f"{core.major + 1}.0.0") not in accepted
