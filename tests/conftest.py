"""Fixtures shared by the template's tests: local core index, template snapshot, services."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import urlsplit
from urllib.request import url2pathname

import pytest

from harness.core_index import PrivateIndex, publish_core, serving_private_index
from harness.generate import copy
from harness.podman import EngineUnavailableError, Podman, podman_engine
from harness.postgres import PostgresUnavailableError, postgres_server
from harness.template_repo import current_version, snapshot
from tests.services import GeneratedService, ServiceCache
from tests.tools import require_tool

__all__ = ["require_tool"]


@pytest.fixture(scope="session")
def core_index_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A file:// simple-API index holding the freshly built reference core."""
    work = tmp_path_factory.mktemp("core-index")
    return publish_core(work / "simple", work)


@pytest.fixture(scope="session")
def private_index(
    core_index_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[PrivateIndex]:
    """The same index as CodeArtifact serves it (HTTPS, the user aws and a password): where
    image builds install the core from, the password given to them as their secret only."""
    root = Path(url2pathname(urlsplit(core_index_url).path))
    with serving_private_index(root, tmp_path_factory.mktemp("private-index")) as index:
        yield index


@pytest.fixture(scope="session")
def podman(
    tmp_path_factory: pytest.TempPathFactory, private_index: PrivateIndex
) -> Iterator[Podman]:
    """podman (harness/podman.py), its builds trusting the private index's certificate. Its tests
    share the xdist group "images", so one worker sets it and its base images up, once."""
    try:
        with podman_engine(
            tmp_path_factory.mktemp("podman"), ca_bundle=private_index.ca_bundle
        ) as engine:
            yield engine
    except EngineUnavailableError as error:
        pytest.fail(str(error), pytrace=False)


@pytest.fixture(scope="session")
def template_version() -> str:
    return current_version()


@pytest.fixture(scope="session")
def template_repo(tmp_path_factory: pytest.TempPathFactory, template_version: str) -> Path:
    """The working tree's template, committed and tagged as its current version."""
    return snapshot(tmp_path_factory.mktemp("template") / "repo", tag=template_version)


@pytest.fixture(scope="session")
def base_answers(core_index_url: str) -> dict[str, str]:
    """Answers every generated service in the tests gets: the core comes from the local index."""
    return {"core_index_url": core_index_url}


@pytest.fixture(scope="session")
def database_url() -> Iterator[str]:
    """A PostgreSQL server URL (TEST_DATABASE_URL, or a throwaway cluster for the session)."""
    try:
        with postgres_server() as url:
            yield url
    except PostgresUnavailableError as error:
        pytest.fail(str(error), pytrace=False)


@pytest.fixture(scope="session")
def services(
    tmp_path_factory: pytest.TempPathFactory, template_repo: Path, base_answers: dict[str, str]
) -> ServiceCache:
    """Generated and installed services, one per set of answers, shared by the tests of a worker."""
    return ServiceCache(tmp_path_factory.mktemp("services"), template_repo, base_answers)


@pytest.fixture
def render(
    tmp_path: Path, template_repo: Path, base_answers: dict[str, str]
) -> Callable[..., GeneratedService]:
    """Render the template (tasks skipped) into a fresh folder and return it."""

    def _render(**answers: str) -> GeneratedService:
        destination = tmp_path / "service"
        copy(template_repo, destination, {**base_answers, **answers}, skip_tasks=True)
        return GeneratedService(destination)

    return _render
