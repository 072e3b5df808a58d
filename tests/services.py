"""Generated services as test objects: where they are, their answers, and running their commands."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from subprocess import CompletedProcess

import pytest
import yaml

from harness.commands import find_python, run, tool_env
from harness.generate import copy
from harness.postgres import free_port, fresh_database
from harness.serve import serving

DEFAULT_PYTHON = "3.11"
"""copier.yml's default `python_version`."""
TOOL_FOLDERS = frozenset(
    {".git", ".venv", ".mypy_cache", ".ruff_cache", ".pytest_cache", "__pycache__"}
)
"""Folders of git and the tools, not of the service's own files."""


OFFLINE = {
    "UV_OFFLINE": "1",
    "PIP_NO_INDEX": "1",
    "http_proxy": "http://127.0.0.1:9",
    "https_proxy": "http://127.0.0.1:9",
}
"""Where pre-commit or uv could reach the network, they fail instead."""
ALEMBIC_UPGRADE = ("uv", "run", "--locked", "alembic", "upgrade", "head")


def service_files(root: Path) -> list[Path]:
    """Every file under `root`, outside git's and the tools' own folders."""
    return sorted(
        path
        for path in root.rglob("*")
        if path.is_file() and not TOOL_FOLDERS.intersection(path.relative_to(root).parts)
    )


def uv_python(answers: Mapping[str, str]) -> dict[str, str]:
    """`UV_PYTHON` for a service with these answers: the interpreter of its Python version."""
    return {"UV_PYTHON": python_for(answers.get("python_version", DEFAULT_PYTHON))}


def assert_pytest_green(output: str) -> None:
    """pytest's output: tests passed, and none failed, errored or skipped. How many is the
    service's business: the tests that must run are named by the tests that need them."""
    assert re.search(r"\d+ passed", output), output
    assert not [word for word in (" failed", " error", " skipped") if word in output], output


def variant_params(names: Iterable[str]) -> list[object]:
    """One parameter per variant, each in its own xdist group: a worker generates and installs
    each variant only once (ServiceCache)."""
    return [pytest.param(name, marks=pytest.mark.xdist_group(name)) for name in names]


def python_for(version: str) -> str:
    """The interpreter for a generated service's Python version; a failing test if missing."""
    interpreter = find_python(version)
    if interpreter is None:
        pytest.fail(
            f"Python {version} is needed to test services generated for it: install it "
            f"(e.g. `pyenv install {version}`) so that python{version} is on PATH or under pyenv.",
            pytrace=False,
        )
    return interpreter


@dataclass
class GeneratedService:
    """A folder produced by `copier copy`."""

    path: Path
    answers: dict[str, str] = field(init=False)

    def __post_init__(self) -> None:
        answers_file = self.path / ".copier-answers.yml"
        self.answers = yaml.safe_load(answers_file.read_text()) if answers_file.exists() else {}

    @property
    def package_name(self) -> str:
        return str(self.answers["package_name"])

    @property
    def env(self) -> dict[str, str]:
        """Environment for the service's commands: its own Python version, no outer venv."""
        return uv_python(self.answers)

    def run(
        self,
        *args: str,
        env: Mapping[str, str] | None = None,
        check: bool = True,
        timeout: float = 600,
    ) -> CompletedProcess[str]:
        return run(
            list(args), cwd=self.path, env={**self.env, **(env or {})}, check=check, timeout=timeout
        )

    def account_token(self, account_id: str = "acct-1") -> str:
        """An account token the service accepts while it runs with its development secrets."""
        core = self.answers.get("core_module", "smplcore")
        script = (
            f"from {self.package_name}.settings import get_settings\n"
            f"from {core}.testing import make_account_token\n"
            f"print(make_account_token(get_settings().core_settings(), account_id={account_id!r}))"
        )
        return self.run("uv", "run", "--locked", "python", "-c", script).stdout.strip()

    def assert_checks_pass(self, env: Mapping[str, str] | None = None) -> str:
        """What the service's CI runs (ruff, mypy, tests), all green; returns pytest's -v output."""
        for check in (["ruff", "check"], ["ruff", "format", "--check"], ["mypy"]):
            self.run("uv", "run", "--locked", *check)
        output = self.run(
            "uv", "run", "--locked", "pytest", "-v", "-p", "no:cacheprovider", env=env
        ).stdout
        assert_pytest_green(output)
        return output

    def pre_commit(self, home: Path, **env: str) -> CompletedProcess[str]:
        """`pre-commit run --all-files` through the service's locked pre-commit, offline, with
        its hook environments under `home`."""
        return self.run(
            "uv", "run", "--locked", "pre-commit", "run", "--all-files", "--color", "never",
            env={"PRE_COMMIT_HOME": str(home), **OFFLINE, **env}, check=False,
        )  # fmt: skip

    def files(self) -> list[Path]:
        """Every generated file, outside git's and the tools' own folders."""
        return service_files(self.path)


class ServiceCache:
    """Services generated with tasks (git init, uv lock) and installed with `uv sync --locked`.

    One per distinct set of answers, so the checks of one variant share a single copy and install.
    """

    def __init__(self, root: Path, template: Path, base_answers: Mapping[str, str]) -> None:
        self._root = root
        self._template = template
        self._base_answers = dict(base_answers)
        self._services: dict[tuple[tuple[str, str], ...], GeneratedService] = {}

    def get(self, **answers: str) -> GeneratedService:
        key = tuple(sorted(answers.items()))
        if key not in self._services:
            destination = self._root / f"service-{len(self._services)}"
            data = {**self._base_answers, **answers}
            copy(self._template, destination, data, env=uv_python(data))
            service = GeneratedService(destination)
            service.run("uv", "sync", "--locked")
            self._services[key] = service
        return self._services[key]


@contextmanager
def serving_service(
    service: GeneratedService, *, log: Path, database_url: Callable[[], str]
) -> Iterator[str]:
    """The service started as its container starts it (`python -m <package>`), on a free port;
    yields its base URL. The postgres variant gets a fresh database of the server at
    `database_url()` (called only for it), migrated as the deploy does."""
    with ExitStack() as stack:
        port = free_port()
        env = {**service.env, "HTTP_PORT": str(port)}
        if service.answers.get("database") == "postgres":
            url = stack.enter_context(fresh_database(database_url()))
            service.run(*ALEMBIC_UPGRADE, env={"DATABASE_URL": url})
            env["DATABASE_URL"] = url
        base_url = f"http://127.0.0.1:{port}"
        stack.enter_context(
            serving(
                ["uv", "run", "--locked", "python", "-m", service.package_name],
                cwd=service.path,
                env=tool_env(env),
                base_url=base_url,
                log=log,
            )
        )
        yield base_url
