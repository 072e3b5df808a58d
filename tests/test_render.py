"""Rendering: every choice renders to a tree with no leftover Jinja and only well-formed files."""

from __future__ import annotations

import json
import re
import tomllib
from collections.abc import Callable

import pytest
import yaml

from tests.services import GeneratedService

CHOICES = [
    {},
    {"python_version": "3.12"},
    {"python_version": "3.13"},
    {"database": "postgres"},
    {"service_name": "billing-events", "package_name": "billing", "http_port": "9000"},
]
JINJA_MARKERS = ("{{", "}}", "{%", "%}")
GITHUB_EXPRESSION = re.compile(r"\$\{\{.*?\}\}")
"""GitHub Actions' own `${{ ... }}` expressions belong in the rendered workflows."""


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
        ".yaml": yaml.safe_load,
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
    assert "smplkit-core~=1.0" in pyproject["project"]["dependencies"]
    [index] = [index for index in pyproject["tool"]["uv"]["index"] if index["name"] == "private"]
    assert index == {"name": "private", "url": core_index_url, "explicit": True}
    assert pyproject["tool"]["uv"]["sources"]["smplkit-core"] == {"index": "private"}
