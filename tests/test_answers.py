"""Bad answers: each is refused with a message naming the problem, and nothing is written."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.generate import copy

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
    ({"aws_region": "us-north-9"}, 'aws_region "us-north-9" is not an AWS region'),
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
