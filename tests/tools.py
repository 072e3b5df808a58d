"""External tools the tests need: present, or a failure that says how to install them; and the
readers of the pipeline's files (workflows, the Dockerfile) that several test modules check."""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from harness.commands import run, tool_env

DEV_TOOLS_HINT = "run `make test` (or `uv sync --locked`), which installs the locked dev tools"


def require_tool(name: str, install_hint: str) -> str:
    """The tool's path; when missing, a failing test (never a skip) saying how to install it."""
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"`{name}` is not installed; {install_hint}", pytrace=False)
    return path


def dev_tool(name: str) -> str:
    """A dev tool from this environment (or PATH); a failing test, never a skip, when missing."""
    return shutil.which(name, path=tool_env()["PATH"]) or require_tool(name, DEV_TOOLS_HINT)


def load_workflow(path: Path) -> dict[str, Any]:
    """A workflow (or any YAML mapping) with its `on:` key as written: YAML 1.1 reads it as the
    boolean True."""
    document = yaml.safe_load(path.read_text())
    assert isinstance(document, dict), path
    if True in document:
        document["on"] = document.pop(True)
    return document


def workflow_steps(workflow: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """(job id, step) for every step of every job."""
    for job_id, job in workflow["jobs"].items():
        for step in job.get("steps", []):
            yield job_id, step


def dockerfile_instructions(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs: continuation lines joined, runs of spaces made one,
    comments dropped."""
    instructions: list[tuple[str, str]] = []
    pending = ""
    for line in path.read_text().splitlines():
        if not pending and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        keyword, _, rest = (pending + line).strip().partition(" ")
        pending = ""
        instructions.append((keyword.upper(), " ".join(rest.split())))
    return instructions


SHA_PIN = re.compile(r"^[\w.-]+/[\w./-]+@[0-9a-f]{40}$")
VERSION_COMMENT = re.compile(r"^#\s+v\d+\.\d+\.\d+$")
GITHUB_EXPRESSION = re.compile(r"\$\{\{.*?\}\}")
"""GitHub Actions' own `${{ ... }}` expressions, which belong in the rendered workflows."""
USES_LINE = re.compile(r"^\s*(?:-\s+)?uses:\s*(?P<ref>\S+)\s*(?P<comment>#.*)?$")


def action_pins(paths: list[Path]) -> dict[str, set[str]]:
    """Every third-party action the files use: {action: {"<sha> # <release>", ...}}, each use
    asserted to be pinned to a full commit with its release in a comment."""
    pins: dict[str, set[str]] = {}
    for path in paths:
        for line in path.read_text().splitlines():
            match = USES_LINE.match(line)
            if not match or match["ref"].startswith("$/"):
                continue
            assert SHA_PIN.match(match["ref"]), f"{path.name}: {line.strip()}"
            assert match["comment"], f"{path.name}: {line.strip()}"
            assert VERSION_COMMENT.match(match["comment"]), f"{path.name}: {line.strip()}"
            action, sha = match["ref"].split("@")
            pins.setdefault(action, set()).add(f"{sha} {match['comment']}")
    return pins


def assumes_a_role(root: Path, job: dict[str, Any]) -> bool:
    """The job assumes an AWS role: itself, through a local action, or in a reusable workflow
    (paths from the repository `root`)."""
    if "uses" in job:
        called = load_workflow(root / job["uses"].removeprefix("$/"))
        return any(assumes_a_role(root, inner) for inner in called["jobs"].values())
    for step in job["steps"]:
        uses = str(step.get("uses", ""))
        if uses.startswith("aws-actions/configure-aws-credentials@"):
            return True
        if (
            uses.startswith("$/")
            and "configure-aws-credentials@"
            in (root / uses.removeprefix("$/") / "action.yml").read_text()
        ):
            return True
    return False


def zizmor_findings(folder: Path, *kinds: str) -> list[Any]:
    """zizmor's offline audits (online ones need GitHub) of the given kinds of files under folder,
    with no ignore comment or config honoured."""
    result = run(
        [
            dev_tool("zizmor"),
            "--offline",
            "--no-ignores",
            "--no-config",
            "--format=json",
            *(f"--collect={kind}" for kind in kinds),
            ".",
        ],
        cwd=folder,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    findings: list[Any] = json.loads(result.stdout)
    return findings
