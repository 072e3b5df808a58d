"""Bad answers: each is refused with a message naming the problem, and nothing is written."""

from __future__ import annotations

import os
import re
import shutil
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from harness.commands import run
from harness.generate import copy
from tests.services import GeneratedService

BAD_ANSWERS = [
    ({"service_name": "Orders"}, "service_name must be kebab-case"),
    ({"service_name": "1orders"}, "service_name must be kebab-case"),
    ({"service_name": "orders_"}, "service_name must be kebab-case"),
    ({"service_name": "orders-"}, "service_name must be kebab-case"),
    ({"service_name": "x"}, "2 to 40 characters"),
    ({"service_name": "a" * 60}, "2 to 40 characters"),
    ({"package_name": "class"}, "is a Python keyword"),
    ({"package_name": "1orders"}, "package_name must be a lowercase Python identifier"),
    ({"package_name": "orders_"}, "package_name must be a lowercase Python identifier"),
    ({"package_name": "json"}, "would shadow the standard library"),
    ({"package_name": "asyncio"}, "would shadow the standard library"),
    ({"package_name": "graphlib"}, "would shadow the standard library"),
    ({"package_name": "smplcore"}, "would shadow a package the service depends on"),
    (
        {"package_name": "corelib", "core_module": "corelib"},
        "core_module must differ from package_name",
    ),
    ({"http_port": "80"}, "http_port must be between 1024 and 65535"),
    ({"http_port": "70000"}, "http_port must be between 1024 and 65535"),
    ({"http_port": "abc"}, "http_port must be a whole number"),
    ({"slack_channel": "orders-alerts"}, "slack_channel must start with #"),
    ({"slack_channel": "#Orders Alerts"}, "slack_channel must be # followed by"),
    ({"aws_account_id": "12345678901"}, "aws_account_id must be exactly 12 digits"),
    ({"aws_account_id": "12345678901a"}, "aws_account_id must be exactly 12 digits"),
    ({"aws_region": "us-east"}, 'aws_region "us-east" is not shaped like an AWS region'),
    ({"aws_region": "US-EAST-1"}, 'aws_region "US-EAST-1" is not shaped like an AWS region'),
    (
        {"databse": "postgres"},
        "question 'unknown_data': --data names no question of this template: databse.",
    ),
    ({"core_index_url": "http://pypi.internal/simple/"}, "must not use plain http://"),
    ({"core_index_url": "ftp://pypi.internal/simple/"}, "must be an https:// URL"),
    ({"core_index_url": "https://user:secret@pypi.internal/simple/"}, "without credentials"),
    ({"core_version": "1.0"}, "core_version must be a PEP 440 version specifier"),
    ({"core_version": ">=banana"}, "core_version must be a PEP 440 version specifier"),
    ({"python_version": "3.9"}, "Invalid choice for 'python_version'"),
    ({"database": "mysql"}, "Invalid choice for 'database'"),
    ({"owner_team": "Platform Team"}, "owner_team must be kebab-case"),
    ({"description": ""}, "description must not be empty"),
    ({"ecs_cluster": "my cluster"}, "ecs_cluster must be 1 to 255"),
    ({"core_package": "smplkit core"}, "core_package must be a valid distribution name"),
    ({"backstage_system": "product services"}, "backstage_system must be a Backstage entity name"),
    ({"github_organization": "-acme"}, "github_organization must be a GitHub account name"),
    ({"github_repository": "orders"}, "github_repository must be a GitHub repository's owner/name"),
    (
        {"shared_code_reviewers": "platform-reviewers"},
        "shared_code_reviewers must be GitHub owners",
    ),
]


@pytest.mark.parametrize(("answers", "message"), BAD_ANSWERS, ids=lambda value: str(value)[:40])
def test_bad_answer_is_refused_and_nothing_is_written(
    answers: dict[str, str], message: str, template_repo: Path, tmp_path: Path
) -> None:
    destination = tmp_path / "service"
    result = copy(template_repo, destination, answers, check=False)
    assert result.returncode != 0
    assert message in result.stderr
    assert not destination.exists()


def test_bad_answer_leaves_an_existing_folder_untouched(
    template_repo: Path, tmp_path: Path
) -> None:
    destination = tmp_path / "service"
    destination.mkdir()
    (destination / "notes.txt").write_text("mine\n")
    result = copy(template_repo, destination, {"http_port": "80"}, check=False)
    assert result.returncode != 0
    assert [path.name for path in destination.iterdir()] == ["notes.txt"]


def test_a_region_of_the_right_shape_is_accepted_without_a_list(
    render: Callable[..., GeneratedService],
) -> None:
    """A region AWS opens after this release needs no new template release."""
    assert render(aws_region="eu-south-9").answers["aws_region"] == "eu-south-9"


def test_the_service_name_defaults_to_the_destination_folder(
    template_repo: Path, tmp_path: Path, base_answers: dict[str, str]
) -> None:
    destination = tmp_path / "2024_Billing_Events"
    data = [arg for key, value in base_answers.items() for arg in ("--data", f"{key}={value}")]
    copier = [sys.executable, "-m", "copier", "copy", "--trust", "--defaults", "--quiet"]
    run([*copier, "--skip-tasks", *data, str(template_repo), str(destination)])
    answers = GeneratedService(destination).answers
    assert (answers["service_name"], answers["package_name"]) == (
        "billing-events",
        "billing_events",
    )


def test_a_relative_template_path_is_refused_and_nothing_is_written(
    template_repo: Path, tmp_path: Path
) -> None:
    """`make update` could not find the template again from the service's folder."""
    relative = os.path.relpath(template_repo, tmp_path)
    copier = [sys.executable, "-m", "copier", "copy", "--trust", "--defaults", "--quiet"]
    result = run([*copier, relative, "service"], cwd=tmp_path, check=False)
    assert result.returncode != 0
    assert f"question 'template_path': The template path \"{relative}\" is relative" in (
        result.stderr
    )
    assert "absolute path" in result.stderr
    assert not (tmp_path / "service").exists()


def test_a_folder_holding_a_file_the_template_writes_is_refused_before_anything_is_written(
    template_repo: Path, tmp_path: Path, base_answers: dict[str, str]
) -> None:
    """Copier would stop at README.md half-way through the copy; notes.txt is no clash (the
    post-copy task warns about it)."""
    destination = tmp_path / "orders"
    destination.mkdir()
    (destination / "README.md").write_text("# Mine\n")
    (destination / "notes.txt").write_text("mine\n")
    result = copy(template_repo, destination, base_answers, check=False)
    assert result.returncode != 0
    assert (
        "question 'destination': The destination "
        f'"{destination}" already holds files this template writes: README.md.'
    ) in " ".join(result.stderr.split())
    assert sorted(path.name for path in destination.iterdir()) == ["README.md", "notes.txt"]
    assert (destination / "README.md").read_text() == "# Mine\n"


@pytest.mark.parametrize(
    "answers",
    [
        {},
        {"database": "postgres"},
        {"layout": "workspace"},
        {"workloads": "[api, worker, jobs]", "database": "postgres"},
        {"workloads": "[jobs]"},
    ],
    ids=["service", "postgres", "workspace", "every-workload", "jobs-alone"],
)
def test_the_refusal_names_every_file_the_template_writes(
    answers: dict[str, str],
    render: Callable[..., GeneratedService],
    template_repo: Path,
    tmp_path: Path,
    base_answers: dict[str, str],
) -> None:
    """The template's files, listed from its tree, are exactly what a copy writes."""
    service = render(**answers)
    written = sorted(str(path.relative_to(service.path)) for path in service.files())
    destination = tmp_path / "again"
    shutil.copytree(service.path, destination)
    result = copy(template_repo, destination, {**base_answers, **answers}, check=False)
    stderr = " ".join(result.stderr.split())
    listed = re.search(r"this template writes: (.*?)\. Copier would", stderr)
    assert listed, result.stderr
    assert sorted(listed[1].split(", ")) == written
