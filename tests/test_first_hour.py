"""The first hour with a new service: calling its API locally, and the everyday make targets."""

from __future__ import annotations

import base64
import inspect
import json
import os
import shlex
import socket
import sys
import tomllib
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

from harness.commands import REPO_ROOT, run, tool_env
from harness.serve import serving
from smplcore.testing import make_account_token
from tests.services import GeneratedService, ServiceCache


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def get(url: str, token: str | None) -> tuple[int, dict[str, object]]:
    headers = {"Accept": "application/vnd.api+json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(url, headers=headers)  # noqa: S310 - loopback
    try:
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 - loopback
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def core_version() -> str:
    pyproject = tomllib.loads((REPO_ROOT / "core" / "pyproject.toml").read_text())
    return str(pyproject["project"]["version"])


def test_make_try_prints_a_copy_command_that_needs_no_private_index(
    template_repo: Path, tmp_path: Path
) -> None:
    """`make try` (harness.try_out) builds the core into a local index and prints the copy line;
    that line, run as printed (with the locked Copier, on a snapshot of this tree), gives a locked
    service."""
    output = run([sys.executable, "-m", "harness.try_out", "--folder", str(tmp_path / "try")])
    [line] = [line for line in output.stdout.splitlines() if "copier copy" in line]
    command = shlex.split(line)
    index_url = (tmp_path / "try" / "index").as_uri()
    assert command == [
        "uvx", "copier", "copy", "--trust", "--data", f"core_index_url={index_url}",
        str(REPO_ROOT), str(REPO_ROOT.parent / "orders"),
    ]  # fmt: skip
    copier = [sys.executable, "-m", "copier", *command[2:-2]]
    run([*copier, "--defaults", str(template_repo), "orders"], cwd=tmp_path)
    lock = (tmp_path / "orders" / "uv.lock").read_text()
    assert f'name = "smplkit-core"\nversion = "{core_version()}"\nsource = {{ registry = "' in lock
    requirement = (
        '{ name = "smplkit-core", extras = ["telemetry"], specifier = ">=1.0,<2", '
        f'index = "{index_url}" }}'
    )
    assert requirement in lock


def test_the_core_readme_sets_up_the_index_as_a_generated_service_does(
    render: Callable[..., GeneratedService],
) -> None:
    """Its index name, credentials and URL schemes are the ones a service reads and accepts."""
    readme = (REPO_ROOT / "core" / "README.md").read_text()
    pyproject = tomllib.loads((render().path / "pyproject.toml").read_text())
    [index] = pyproject["tool"]["uv"]["index"]
    name = index["name"]
    assert f'name = "{name}"' in readme
    assert f'smplkit-core = {{ index = "{name}" }}' in readme
    assert f"UV_INDEX_{name.upper()}_USERNAME=aws" in readme
    assert "UV_INDEX_SMPLKIT" not in readme
    assert "127.0.0.1" not in readme, "a plain http:// index, which services refuse"


def test_make_token_calls_the_served_api(services: ServiceCache, tmp_path: Path) -> None:
    """The README's "Calling the API locally": `make token`, then the served API answers 200."""
    service = services.get()
    token = service.run("make", "--no-print-directory", "token", "ACCOUNT=acct-7").stdout.strip()
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    argv = ["uv", "run", "--locked", "python", "-m", service.package_name]
    env = tool_env({**service.env, "HTTP_PORT": str(port)})
    with serving(argv, cwd=service.path, env=env, base_url=base_url, log=tmp_path / "log"):
        status, document = get(f"{base_url}/v1/widgets", token)
        assert (status, document["data"]) == (200, []), document
        assert get(f"{base_url}/v1/widgets", None)[0] == 401


def test_make_token_is_on_the_tier_the_tests_tokens_get(services: ServiceCache) -> None:
    """One default tier: a feature granted only to other tiers answers 403 to both alike."""
    token = services.get().run("make", "--no-print-directory", "token").stdout.strip()
    payload = token.split(".")[1]
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    tests_default = inspect.signature(make_account_token).parameters["tier"].default
    assert claims["tier"] == tests_default == "free"


def test_the_catalog_docstring_example_runs_as_it_is_written(services: ServiceCache) -> None:
    """The example that grants a feature of the service's own names every import it needs."""
    script = (
        "import re, textwrap\n"
        "from orders import catalog\n"
        "example = re.search(r'e\\.g\\.\\n\\n((?: {4}.*\\n|\\n)+)', catalog.__doc__)[1]\n"
        "namespace = {}\n"
        "exec(textwrap.dedent(example), namespace)\n"
        "print(sorted(namespace['SERVICE_PRODUCTS']['shipments'].tiers))"
    )
    output = services.get().run("uv", "run", "--locked", "python", "-c", script).stdout
    assert output.strip() == "['enterprise', 'team']"


def test_make_token_is_refused_outside_local_settings(services: ServiceCache) -> None:
    service = services.get()
    secrets = {"ACCOUNT_TOKEN_KEY": "k" * 40, "INTERNAL_TOKEN_SECRET": "s" * 40}
    for env in ({"ENVIRONMENT": "production"}, {"ENVIRONMENT": "production", **secrets}):
        result = service.run("make", "token", env=env, check=False)
        assert result.returncode != 0
        assert "make token: refused" in result.stderr
        assert result.stdout.count(".") < 2, "something like a token was printed"


def test_make_format_formats_even_when_lint_errors_are_left(services: ServiceCache) -> None:
    """`ruff check --fix` failing must not stop `ruff format`; make still reports the failure."""
    service: GeneratedService = services.get()
    scratch = service.path / "src" / service.package_name / "scratch_format.py"
    scratch.write_text('"""Scratch."""\n\nx   =   [1,2]\n\n\ndef f():\n    return undefined_name\n')
    try:
        result = service.run("make", "format", check=False)
        assert result.returncode != 0, result.stdout
        assert "x = [1, 2]\n" in scratch.read_text()
    finally:
        scratch.unlink()


def test_make_db_names_what_to_install_without_the_compose_plugin(
    render: Callable[..., GeneratedService], tmp_path: Path
) -> None:
    """A docker without the Compose plugin answers `unknown flag: --detach`: say what is missing."""
    service = render(database="postgres")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    docker = bin_dir / "docker"
    docker.write_text('#!/bin/sh\necho "docker: unknown command: docker $1" >&2\nexit 1\n')
    docker.chmod(0o755)
    path = f"{bin_dir}:{os.environ['PATH']}"
    result = service.run("make", "db", env={"PATH": path}, check=False)
    assert result.returncode != 0
    assert "make db needs Docker with its Compose plugin" in result.stdout
    assert "docker-compose-plugin" in result.stdout
    assert "Without Docker, any PostgreSQL server you may create databases on will do" in (
        result.stdout
    )
    assert "TEST_DATABASE_URL=postgresql://USER:PASSWORD@HOST:5432/postgres" in result.stdout
