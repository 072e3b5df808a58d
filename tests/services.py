"""Generated services as test objects: where they are, their answers, and running their commands."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from subprocess import CompletedProcess

import pytest
import yaml

from harness.commands import find_python, run
from harness.generate import copy


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
        version = str(self.answers.get("python_version", "3.11"))
        return {"UV_PYTHON": python_for(version)}

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

    def passes_its_checks(self, env: Mapping[str, str] | None = None, min_tests: int = 20) -> str:
        """What the service's CI runs (ruff, mypy, tests), all green; returns pytest's -v output."""
        for check in (["ruff", "check"], ["ruff", "format", "--check"], ["mypy"]):
            self.run("uv", "run", "--locked", *check)
        output = self.run(
            "uv", "run", "--locked", "pytest", "-v", "-p", "no:cacheprovider", env=env
        ).stdout
        passed = re.search(r"(\d+) passed", output)
        assert passed, output
        assert int(passed.group(1)) >= min_tests, output
        assert not [word for word in (" failed", " error", " skipped") if word in output], output
        return output

    def files(self) -> list[Path]:
        """Every generated file, outside git's and the tools' own folders."""
        skipped = {".git", ".venv", ".mypy_cache", ".ruff_cache", ".pytest_cache", "__pycache__"}
        return sorted(
            path
            for path in self.path.rglob("*")
            if path.is_file() and not skipped.intersection(path.relative_to(self.path).parts)
        )


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
            uv_python = {"UV_PYTHON": python_for(data.get("python_version", "3.11"))}
            copy(self._template, destination, data, env=uv_python)
            service = GeneratedService(destination)
            service.run("uv", "sync", "--locked")
            self._services[key] = service
        return self._services[key]
