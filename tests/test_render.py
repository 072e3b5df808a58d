"""Rendering: every choice renders to a tree with no leftover Jinja and only well-formed files."""

from __future__ import annotations

import json
import tomllib
from collections.abc import Callable
from typing import Any

import pytest
import yaml

from harness.commands import REPO_ROOT
from hooks import post_copy
from tests.services import GeneratedService
from tests.tools import GITHUB_EXPRESSION

CHOICES = [
    {},
    {"python_version": "3.12"},
    {"python_version": "3.13"},
    {"database": "postgres"},
    {"service_name": "billing-events", "package_name": "billing", "http_port": "9000"},
]
JINJA_MARKERS = ("{{", "}}", "{%", "%}")


@pytest.fixture(
    params=CHOICES,
    ids=lambda answers: ",".join(f"{k}={v}" for k, v in answers.items()) or "defaults",
)
def rendered(
    request: pytest.FixtureRequest, render: Callable[..., GeneratedService]
) -> GeneratedService:
    return render(**request.param)


def test_no_unrendered_jinja_in_paths_or_files(rendered: GeneratedService) -> None:
    leftovers = []
    for path in rendered.files():
        relative = str(path.relative_to(rendered.path))
        if any(marker in relative for marker in JINJA_MARKERS) or path.suffix == ".jinja":
            leftovers.append(f"path {relative}")
        text = GITHUB_EXPRESSION.sub("", path.read_text(errors="replace"))
        leftovers += [f"{relative}: {marker}" for marker in JINJA_MARKERS[::2] if marker in text]
    assert not leftovers


def test_python_files_compile(rendered: GeneratedService) -> None:
    sources = [path for path in rendered.files() if path.suffix == ".py"]
    assert sources, "the service has no Python files"
    for path in sources:
        compile(path.read_text(), str(path), "exec")


def test_data_files_parse(rendered: GeneratedService) -> None:
    parsers: dict[str, Callable[[str], object]] = {
        ".toml": tomllib.loads,
        ".yml": yaml.safe_load,
        ".yaml": lambda text: list(yaml.safe_load_all(text)),
        ".json": json.loads,
    }
    parsed = 0
    for path in rendered.files():
        parser = parsers.get(path.suffix)
        if parser:
            parser(path.read_text())
            parsed += 1
    assert parsed >= 3


def test_answers_are_recorded_without_reference_data(rendered: GeneratedService) -> None:
    answers = rendered.answers
    assert answers["service_name"]
    assert answers["_src_path"]
    assert "python_stdlib_modules" not in answers
    assert "aws_regions" not in answers


def test_pyproject_pins_the_core_to_the_private_index(
    render: Callable[..., GeneratedService], core_index_url: str
) -> None:
    service = render(core_version="~=1.0")
    pyproject = tomllib.loads((service.path / "pyproject.toml").read_text())
    assert "smplkit-core[telemetry]~=1.0" in pyproject["project"]["dependencies"]
    [index] = [index for index in pyproject["tool"]["uv"]["index"] if index["name"] == "private"]
    assert index == {"name": "private", "url": core_index_url, "explicit": True}
    assert pyproject["tool"]["uv"]["sources"]["smplkit-core"] == {"index": "private"}


def copier_config() -> dict[str, Any]:
    config = yaml.safe_load((REPO_ROOT / "copier.yml").read_text())
    assert isinstance(config, dict)
    return config


def questions() -> dict[str, dict[str, Any]]:
    """copier.yml's questions (its settings start with `_`)."""
    return {name: value for name, value in copier_config().items() if not name.startswith("_")}


def test_copier_yml_holds_questions_and_settings_not_data() -> None:
    """No list that goes stale (standard-library modules, AWS regions): checks derive or match."""
    config = copier_config()
    assert "python_stdlib_modules" not in config
    assert "aws_regions" not in config
    defaults = [question.get("default") for question in questions().values()]
    assert not [value for value in defaults if isinstance(value, list) and len(value) > 30]


def test_every_help_is_whole() -> None:
    """An unquoted ` # ` in YAML starts a comment and cuts the help short."""
    helps = {name: question["help"] for name, question in questions().items()}
    assert helps["slack_channel"].endswith("with its leading # (e.g. #orders-alerts).")
    assert all(text.rstrip().endswith((".", "?", ")")) for text in helps.values()), helps


PLATFORM_SETTINGS = frozenset(
    {
        "core_package",
        "core_module",
        "core_version",
        "codeartifact_domain",
        "codeartifact_repository",
        "core_index_url",
        "backstage_system",
        "github_organization",
        "shared_code_reviewers",
    }
)


SET_BY_THE_WORKSPACE = frozenset({"workspace_member", "github_repository"})
"""Recorded but never asked: the workspace's `make service` sets them."""
COPY_CHECKS = frozenset({"unknown_data", "template_path", "destination"})
"""Never asked, never recorded: each refuses the copy when its `when`, its refusal, is not empty."""


def test_the_platform_settings_are_recorded_but_never_asked() -> None:
    """`ask: false`, not `when: false`: Copier records the answer, and an update keeps it."""
    for name, question in questions().items():
        never_asked = question.get("ask") is False
        assert never_asked == (name in PLATFORM_SETTINGS | SET_BY_THE_WORKSPACE | COPY_CHECKS), name
        if never_asked and name not in COPY_CHECKS:
            assert "when" not in question, name


def test_a_copy_check_refuses_with_the_text_that_shows_it() -> None:
    for name in COPY_CHECKS:
        question = questions()[name]
        assert question["when"] == question["validator"], name
        assert question["default"] == "", name


def test_the_copy_checks_are_not_recorded(render: Callable[..., GeneratedService]) -> None:
    assert not COPY_CHECKS & set(render().answers)


def test_the_post_copy_placeholders_are_copier_yml_defaults() -> None:
    config = copier_config()
    assert post_copy.PLACEHOLDERS
    for question, placeholder in post_copy.PLACEHOLDERS.items():
        assert config[question]["default"] == placeholder


def test_platform_settings_are_recorded_in_the_answers(
    render: Callable[..., GeneratedService],
) -> None:
    answers = render().answers
    assert answers["core_package"] == "smplkit-core"
    assert answers["core_version"] == ">=1.0,<2"
