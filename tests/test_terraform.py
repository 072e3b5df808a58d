"""The database's Terraform: formatted, clean under checkov, and secure by construction."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest

from harness.commands import run
from tests.services import GeneratedService
from tests.terraform import CHECKOV, blocks
from tests.tools import require_tool

MODULE_FILES = {"versions.tf", "variables.tf", "main.tf", "outputs.tf"}


@pytest.fixture
def terraform_dir(render: Callable[..., GeneratedService]) -> Path:
    return render(database="postgres").path / "infra" / "terraform"


def test_standard_module_layout_with_a_pinned_provider(terraform_dir: Path) -> None:
    assert {path.name for path in terraform_dir.iterdir()} >= MODULE_FILES
    versions = (terraform_dir / "versions.tf").read_text()
    assert re.search(r'source\s*=\s*"hashicorp/aws"\s*\n\s*version\s*=\s*"~> \d+\.\d+"', versions)


def test_no_database_no_terraform(render: Callable[..., GeneratedService]) -> None:
    assert not (render(database="none").path / "infra" / "terraform").exists()


def test_terraform_fmt_check_passes(terraform_dir: Path) -> None:
    terraform = require_tool(
        "terraform", "install Terraform >= 1.6 (https://developer.hashicorp.com/terraform/install)"
    )
    run([terraform, "fmt", "-check", "-diff", "-recursive", str(terraform_dir)])


def test_checkov_reports_no_failed_check(terraform_dir: Path) -> None:
    result = run(
        [
            "uv",
            "tool",
            "run",
            "--from",
            CHECKOV,
            "checkov",
            "--directory",
            str(terraform_dir),
            "--framework",
            "terraform",
            "--compact",
            "--skip-download",
            "--output",
            "cli",
        ],
        check=False,
    )
    summary = re.search(
        r"Passed checks: (\d+), Failed checks: (\d+), Skipped checks: (\d+)", result.stdout
    )
    assert summary, result.stdout + result.stderr
    passed, failed, _ = map(int, summary.groups())
    assert failed == 0, result.stdout
    assert passed >= 40
    assert result.returncode == 0


def test_every_skipped_check_carries_a_reason(terraform_dir: Path) -> None:
    skips = re.findall(
        r"checkov:skip=([A-Z0-9_]+)(?::(.*))?", (terraform_dir / "main.tf").read_text()
    )
    assert all(reason and reason.strip() for _, reason in skips), skips


def test_database_is_private_encrypted_protected_and_password_managed(terraform_dir: Path) -> None:
    database = blocks(terraform_dir, "resource")["aws_db_instance.database"]
    assert database["storage_encrypted"] is True
    assert database["kms_key_id"] == "${aws_kms_key.database.arn}"
    assert database["publicly_accessible"] is False
    assert database["deletion_protection"] is True
    assert database["manage_master_user_password"] is True
    assert "password" not in database
    assert database["iam_database_authentication_enabled"] is True
    assert database["performance_insights_enabled"] is True
    assert database["enabled_cloudwatch_logs_exports"]
    assert database["backup_retention_period"] == "${var.backup_retention_days}"
    assert database["db_subnet_group_name"] == "${aws_db_subnet_group.database.name}"


def test_tls_is_enforced_by_the_parameter_group(terraform_dir: Path) -> None:
    parameters = blocks(terraform_dir, "resource")["aws_db_parameter_group.database"]["parameter"]
    assert {"name": "rds.force_ssl", "value": "1"} in parameters


def test_ingress_only_from_the_service_security_group(terraform_dir: Path) -> None:
    resources = blocks(terraform_dir, "resource")
    ingress = {name: body for name, body in resources.items() if "ingress" in name}
    assert list(ingress) == ["aws_vpc_security_group_ingress_rule.from_service"]
    rule = ingress["aws_vpc_security_group_ingress_rule.from_service"]
    assert rule["referenced_security_group_id"] == "${var.service_security_group_id}"
    assert (rule["from_port"], rule["to_port"]) == (5432, 5432)
    assert not {"cidr_ipv4", "cidr_ipv6", "prefix_list_id"} & set(rule)
    assert "ingress" not in resources["aws_security_group.database"]


def test_no_secret_in_variables_or_outputs(terraform_dir: Path) -> None:
    names = set(blocks(terraform_dir, "variable")) | set(blocks(terraform_dir, "output"))
    text = "\n".join(path.read_text() for path in terraform_dir.glob("*.tf"))
    assert not [name for name in names if "password" in name]
    assert "master_password" not in text
    outputs = (terraform_dir / "outputs.tf").read_text()
    assert "master_user_secret[0].secret_arn" in outputs
