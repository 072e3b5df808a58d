"""Every service on the newest core: `make core-latest`, `make core-bump`, `make core-rc` and the
pre-release guard, on one generated service and a real local index holding several core releases;
the bump and release workflows run against fake `gh` and `aws`; the core's API-diff check.

The service is generated while the index holds only 1.1.0 (so its uv.lock holds 1.1.0); then
1.2.0, 1.3.0rc1 and 2.0.0 are published next to it. The tests run in the order written.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from harness.commands import git, run
from harness.core_index import publish_core_versions
from harness.generate import copy
from tests.services import GeneratedService, uv_python

pytestmark = pytest.mark.xdist_group("core-updates")

CORE = "smplkit-core"
NEWER_RELEASES = ("1.2.0", "1.3.0rc1", "2.0.0")
BREAKING = {
    # 1.2.1 drops a public name every service imports.
    "src/smplcore/__init__.py": ("from smplcore.app import install_core\n", ""),
}


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
    publish_core_versions(index, work, {version: {} for version in NEWER_RELEASES})
    return Fleet(index, work, service)


def locked_core(service: GeneratedService) -> str:
    lock = (service.path / "uv.lock").read_text()
    entry = lock.split(f'name = "{CORE}"\nversion = "', 1)[1]
    return entry.split('"', 1)[0]


def make(service: GeneratedService, *args: str) -> tuple[int, str]:
    result = service.run("make", "--no-print-directory", *args, check=False, timeout=900)
    return result.returncode, result.stdout + result.stderr


def test_core_latest_checks_the_newest_final_release_in_range_and_keeps_the_lock(
    fleet: Fleet,
) -> None:
    lock_before = (fleet.service.path / "uv.lock").read_bytes()
    code, output = make(fleet.service, "core-latest")
    assert code == 0, output
    assert f"Checking {CORE} 1.2.0 (uv.lock holds 1.1.0)" in output
    assert f"passes its checks on {CORE} 1.2.0" in output
    assert " passed" in output
    assert "1.3.0rc1" not in output
    assert "2.0.0" not in output
    assert (fleet.service.path / "uv.lock").read_bytes() == lock_before


def test_core_bump_moves_the_lock_to_the_newest_final_release_in_range(fleet: Fleet) -> None:
    code, output = make(fleet.service, "core-bump")
    assert code == 0, output
    assert locked_core(fleet.service) == "1.2.0"
    assert " passed" in output
    git("checkout", "uv.lock", cwd=fleet.service.path)


def test_core_rc_tests_the_candidate_and_the_guard_refuses_it_until_the_lock_is_final(
    fleet: Fleet,
) -> None:
    code, output = make(fleet.service, "core-rc", "VERSION=1.3.0rc1")
    assert code == 0, output
    assert locked_core(fleet.service) == "1.3.0rc1"
    assert " passed" in output
    lock = (fleet.service.path / "uv.lock").read_text()
    core_entry = f'name = "{CORE}"\nversion = "1.3.0rc1"\nsource = {{ registry = "{fleet.index}" }}'
    assert core_entry in lock  # from the private index, as the explicit-index pin says

    code, output = make(fleet.service, "check")
    assert code != 0
    assert f"uv.lock holds {CORE} 1.3.0rc1, a pre-release" in output
    assert " passed" not in output  # refused before anything else runs

    git("checkout", "uv.lock", cwd=fleet.service.path)
    code, output = make(fleet.service, "core-release-guard")
    assert code == 0, output


def test_a_breaking_release_fails_core_latest_naming_it_and_the_locked_version(
    fleet: Fleet,
) -> None:
    fleet.publish({"1.2.1": BREAKING})
    lock_before = (fleet.service.path / "uv.lock").read_bytes()
    code, output = make(fleet.service, "core-latest")
    assert code != 0
    assert f"{CORE} 1.2.1 breaks the service (uv.lock holds 1.1.0)" in output
    assert "install_core" in output
    assert (fleet.service.path / "uv.lock").read_bytes() == lock_before


def test_the_template_never_installs_the_core_with_uv_run_with(template_repo: Path) -> None:
    """`uv run --with <core>==...` asks the public indexes too (dependency confusion): no command
    or document of the template uses it."""
    found = run(
        ["git", "grep", "-nE", r"uv (run|tool run)[^\n]*--with|uvx[^\n]*--with ", "--", "template"],
        cwd=template_repo,
        check=False,
    )
    assert found.stdout == ""
