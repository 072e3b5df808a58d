"""Dependency confusion: a same-named core on another index never wins over the private index."""

from __future__ import annotations

import re
import tomllib
from collections.abc import Callable

import pytest

from fleet.simple_index import add_to_index
from harness.commands import run
from harness.core_index import CORE_PROJECT
from tests.services import GeneratedService

DECOY_VERSION = "1.99.0"


@pytest.fixture(scope="module")
def decoy_index_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    """An index that offers a higher `smplkit-core` within the services' version range."""
    work = tmp_path_factory.mktemp("decoy")
    project = work / "project"
    (project / "src" / "smplcore").mkdir(parents=True)
    (project / "src" / "smplcore" / "__init__.py").write_text('raise ImportError("decoy core")\n')
    (project / "pyproject.toml").write_text(
        "[project]\n"
        f'name = "smplkit-core"\nversion = "{DECOY_VERSION}"\n'
        "[build-system]\n"
        'requires = ["uv_build>=0.8,<0.14"]\nbuild-backend = "uv_build"\n'
        "[tool.uv.build-backend]\n"
        'module-name = "smplcore"\n'
    )
    run(["uv", "build", "--quiet", "--wheel", "--out-dir", work / "dist", project])
    add_to_index(work / "simple", "smplkit-core", sorted((work / "dist").glob("*.whl")))
    return (work / "simple").as_uri()


def locked_core(service: GeneratedService, decoy_index_url: str) -> tuple[str, str]:
    """Lock with the decoy index consulted first (UV_INDEX outranks the default index)."""
    service.run("uv", "lock", env={"UV_INDEX": decoy_index_url})
    lock = (service.path / "uv.lock").read_text()
    match = re.search(
        r'name = "smplkit-core"\nversion = "([^"]+)"\nsource = \{ registry = "([^"]+)" \}', lock
    )
    assert match, lock
    return match.group(1), match.group(2)


def test_the_core_resolves_only_from_the_private_index(
    render: Callable[..., GeneratedService], decoy_index_url: str, core_index_url: str
) -> None:
    service = render()
    version, registry = locked_core(service, decoy_index_url)
    assert (
        version
        == tomllib.loads((CORE_PROJECT / "pyproject.toml").read_text())["project"]["version"]
    )
    assert registry == core_index_url.removeprefix("file://")


def test_without_the_source_pin_the_decoy_would_win(
    render: Callable[..., GeneratedService], decoy_index_url: str
) -> None:
    """The control: the pin in [tool.uv.sources] is what protects the service."""
    service = render()
    pyproject = service.path / "pyproject.toml"
    text = pyproject.read_text()
    unpinned = re.sub(r'\nsmplkit-core = \{ index = "private" \}\n', "\n", text)
    assert unpinned != text
    pyproject.write_text(unpinned)
    version, _ = locked_core(service, decoy_index_url)
    assert version == DECOY_VERSION
