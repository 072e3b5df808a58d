"""A small stand-in for GitHub's runner, to test what a service's workflows do, not how they read.

`WorkflowRunner` walks a workflow's jobs in the order of their `needs`, evaluates the `if:` and
`${{ ... }}` expressions the workflows use, runs each `run:` script with bash as GitHub's runners
do (in the job's or step's working directory), runs a job once per entry of its `strategy.matrix`,
expands local composite actions and reusable workflows, and hands every other action to an
emulator the test gives. Every command the scripts run that matters (aws, docker, terraform,
curl, ...) is a `FakeCommands` script that records its call and answers from rules the test sets,
so a test asserts from the recorded calls: which image was pushed, which digest each environment
deployed, whether the migrations ran before the rollout.
"""

from __future__ import annotations

import itertools
import json
import re
import subprocess
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from harness.commands import tool_env
from tests.tools import load_workflow

FAKE_COMMAND = """\
#!{python}
import json, os, re, sys
from pathlib import Path

root = Path({root!r})
args = sys.argv[1:]
line = " ".join([os.path.basename(sys.argv[0]), *args])
files = {{arg: Path(arg[7:]).read_text() for arg in args if arg.startswith("file://")}}
call = {{
    "command": os.path.basename(sys.argv[0]),
    "args": args,
    "stdin": sys.stdin.read(),
    "env": {{name: os.environ[name] for name in {recorded_env!r} if name in os.environ}},
    "files": files,
}}
log = root / "calls.jsonl"
earlier_calls = log.read_text().splitlines() if log.exists() else []
before = [json.loads(entry)["line"] for entry in earlier_calls]
with log.open("a") as out:
    out.write(json.dumps({{**call, "line": line}}) + "\\n")
for rule in reversed(json.loads((root / "rules.json").read_text())):
    if re.search(rule["pattern"], line) and (
        rule["after"] is None or any(re.search(rule["after"], earlier) for earlier in before)
    ):
        sys.stdout.write(rule["stdout"])
        sys.exit(rule["exit_code"])
"""

WORKING_DIRECTORY = "working-directory"
"""Where a step's script runs (its own, or its job's default), carried with its environment:
no environment variable can have this name."""

RECORDED_ENV = (
    "UV_INDEX_PRIVATE_PASSWORD",
    "TEST_DATABASE_URL",
    "RUFF_OUTPUT_FORMAT",
    "UV_LOCKED",
    "TF_VAR_slack_webhook_url",
    "TF_VAR_service_security_group_id",
)
"""Variables a fake records with each call, when set."""


@dataclass(frozen=True)
class Call:
    command: str
    args: list[str]
    stdin: str
    env: dict[str, str]
    files: dict[str, str]
    line: str


class FakeCommands:
    """Commands that record their calls (arguments, stdin, the files named `file://...`) and
    answer from rules: the last rule whose pattern matches the command line answers; a rule with
    `after` answers only once a call matching `after` was made. Other calls succeed silently."""

    def __init__(self, root: Path, commands: tuple[str, ...]) -> None:
        self.root = root
        self.bin = root / "bin"
        self.bin.mkdir(parents=True)
        self.rules: list[dict[str, Any]] = []
        self._save_rules()
        for command in commands:
            script = self.bin / command
            script.write_text(
                FAKE_COMMAND.format(
                    python=sys.executable, root=str(root), recorded_env=RECORDED_ENV
                )
            )
            script.chmod(0o755)

    def answer(
        self, pattern: str, stdout: str = "", exit_code: int = 0, after: str | None = None
    ) -> None:
        self.rules.append(
            {"pattern": pattern, "stdout": stdout, "exit_code": exit_code, "after": after}
        )
        self._save_rules()

    def record(self, command: str, args: list[str], files: Mapping[str, str] | None = None) -> None:
        """A call made by something other than a fake command (an emulated action)."""
        call = {
            "command": command,
            "args": args,
            "stdin": "",
            "env": {},
            "files": dict(files or {}),
        }
        with (self.root / "calls.jsonl").open("a") as log:
            log.write(json.dumps({**call, "line": " ".join([command, *args])}) + "\n")

    def calls(self, pattern: str = "") -> list[Call]:
        """The calls so far whose command line matches `pattern`, in order."""
        log = self.root / "calls.jsonl"
        entries = [Call(**json.loads(line)) for line in log.read_text().splitlines()]
        return [call for call in entries if re.search(pattern, call.line)]

    def _save_rules(self) -> None:
        (self.root / "rules.json").write_text(json.dumps(self.rules))


def copier_for_uvx(fakes: FakeCommands) -> None:
    """A `uvx` among the fakes that runs the copier installed here for the workflows'
    `uvx --from copier==X copier ...` (the version the template pins), instead of fetching it."""
    uvx = fakes.bin / "uvx"
    uvx.write_text(
        f'#!/bin/sh\n[ "$1" = --from ] && shift 2\nshift\nexec "{sys.executable}" -m copier "$@"\n'
    )
    uvx.chmod(0o755)


# Expressions: the part of GitHub's language the workflows use.

TOKEN = re.compile(
    r"\s*(?:(?P<string>'(?:[^']|'')*')|(?P<number>\d+)|(?P<op>==|!=|&&|\|\||!|\(|\)|,)"
    r"|(?P<name>[A-Za-z_][\w-]*(?:\.[\w-]+)*))"
)
EXPRESSION = re.compile(r"\$\{\{\s*(.*?)\s*\}\}")
STATUS_FUNCTIONS = ("success()", "failure()", "always()", "cancelled()")


class Expression:
    """Evaluates one expression (`a.b == 'x' && !c.d || format('{0}', e)`) against a context."""

    def __init__(self, text: str, context: Mapping[str, Any], status: str) -> None:
        self.tokens: list[tuple[str, str]] = []
        position = 0
        while position < len(text.rstrip()):
            match = TOKEN.match(text, position)
            assert match, f"cannot read the expression {text!r}"
            assert match.lastgroup
            self.tokens.append((match.lastgroup, match[match.lastgroup]))
            position = match.end()
        self.context = context
        self.status = status

    def value(self) -> Any:
        result = self._or()
        assert not self.tokens, f"unexpected {self.tokens}"
        return result

    def _peek(self) -> str | None:
        return self.tokens[0][1] if self.tokens else None

    def _take(self) -> tuple[str, str]:
        return self.tokens.pop(0)

    def _or(self) -> Any:
        return self._chain("||", self._and, lambda left, right: left or right)

    def _and(self) -> Any:
        return self._chain("&&", self._comparison, lambda left, right: left and right)

    def _chain(
        self, operator: str, operand: Callable[[], Any], combine: Callable[[Any, Any], Any]
    ) -> Any:
        """`a op b op c`: both sides are evaluated, and neither has side effects."""
        left = operand()
        while self._peek() == operator:
            self._take()
            left = combine(left, operand())
        return left

    def _comparison(self) -> Any:
        left = self._unary()
        while self._peek() in {"==", "!="}:
            operator = self._take()[1]
            right = self._unary()
            equal = fold(left) == fold(right)
            left = equal if operator == "==" else not equal
        return left

    def _unary(self) -> Any:
        if self._peek() == "!":
            self._take()
            return not self._unary()
        return self._primary()

    def _primary(self) -> Any:
        kind, text = self._take()
        if text == "(":
            value = self._or()
            assert self._take()[1] == ")"
            return value
        if kind == "string":
            return text[1:-1].replace("''", "'")
        if kind == "number":
            return int(text)
        if self._peek() == "(":
            self._take()
            arguments = []
            while self._peek() != ")":
                arguments.append(self._or())
                if self._peek() == ",":
                    self._take()
            self._take()
            return self._call(text, arguments)
        if text in {"true", "false", "null"}:
            return {"true": True, "false": False, "null": None}[text]
        found: Any = self.context
        for part in text.split("."):
            found = found.get(part) if isinstance(found, Mapping) else None
        return found

    def _call(self, name: str, arguments: list[Any]) -> Any:
        if name == "format":
            template, *values = arguments
            return re.sub(r"\{(\d+)\}", lambda m: as_text(values[int(m[1])]), template)
        if name == "fromJSON":
            return json.loads(arguments[0])
        statuses = {
            "success": self.status == "success",
            "failure": self.status == "failure",
            "always": True,
            "cancelled": False,
        }
        assert name in statuses, f"the runner does not know {name}()"
        return statuses[name]


def fold(value: Any) -> Any:
    """GitHub compares strings case-insensitively, and a missing value (a secret that is not set)
    equals ''."""
    if value is None:
        return ""
    return value.lower() if isinstance(value, str) else value


def as_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return "" if value is None else str(value)


def render(value: Any, context: Mapping[str, Any], status: str = "success") -> str:
    """A YAML value with its `${{ ... }}` expressions replaced by their values."""
    return EXPRESSION.sub(
        lambda match: as_text(Expression(match[1], context, status).value()), as_text(value)
    )


def evaluate(value: Any, context: Mapping[str, Any]) -> Any:
    """A YAML value that is one whole `${{ ... }}` expression, as the value it evaluates to (a
    matrix from `fromJSON(...)`); any other value as it is written."""
    match = EXPRESSION.fullmatch(value.strip()) if isinstance(value, str) else None
    return Expression(match[1], context, "success").value() if match else value


def matrix_entries(strategy: Mapping[str, Any], context: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The entries of a job's `strategy.matrix`: its `include` list, or the product of its axes."""
    matrix = evaluate(strategy["matrix"], context)
    assert isinstance(matrix, dict), f"the runner reads a matrix mapping, not {matrix!r}"
    axes = {
        name: evaluate(values, context)
        for name, values in matrix.items()
        if name not in {"include", "exclude"}
    }
    assert "exclude" not in matrix, "the runner does not apply a matrix's exclude"
    assert not (axes and matrix.get("include")), "the runner does not merge include into axes"
    entries = [dict(entry) for entry in matrix.get("include", [])] or [
        dict(zip(axes, values, strict=True)) for values in itertools.product(*axes.values())
    ]
    # GitHub fails a job whose matrix is empty, instead of skipping it.
    assert entries, f"the matrix {matrix!r} is empty: GitHub fails such a job"
    return entries


def condition(text: Any, context: Mapping[str, Any], status: str) -> bool:
    """An `if:`: without a status function, it holds only while everything succeeded."""
    if text is None:
        return status == "success"
    expression = str(text).strip()
    if expression.startswith("${{"):
        expression = EXPRESSION.sub(lambda match: match[1], expression)
    if not any(function in expression for function in STATUS_FUNCTIONS):
        expression = f"success() && ({expression})"
    return bool(Expression(expression, context, status).value())


# The runner.


@dataclass
class Emulated:
    """What an emulated action gives back: its outputs, and variables it exports to the job."""

    outputs: dict[str, str] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)


ActionEmulator = Callable[[dict[str, str]], Emulated]


def emulated_actions() -> dict[str, ActionEmulator]:
    """The third-party actions of the generated workflows, as far as the scripts after them see:
    AWS credentials set the region; the others do nothing a later script reads."""
    nothing: ActionEmulator = lambda _: Emulated()  # noqa: E731 - a table of one-liners
    return {
        "actions/checkout": nothing,
        "astral-sh/setup-uv": nothing,
        "hashicorp/setup-terraform": nothing,
        "actions/upload-artifact": nothing,
        "actions/download-artifact": nothing,
        "aws-actions/amazon-ecs-deploy-task-definition": nothing,
        "aws-actions/configure-aws-credentials": lambda inputs: Emulated(
            env={"AWS_REGION": inputs["aws-region"], "AWS_DEFAULT_REGION": inputs["aws-region"]}
        ),
    }


@dataclass
class JobResult:
    result: str
    """success, failure or skipped."""
    outputs: dict[str, str] = field(default_factory=dict)
    log: str = ""
    """What its scripts wrote, for failure messages."""
    legs: list[tuple[dict[str, Any], JobResult]] = field(default_factory=list)
    """A matrix job's runs: (its matrix entry, its result)."""


@dataclass
class StepsRun:
    status: str = "success"
    steps: dict[str, dict[str, Any]] = field(default_factory=dict)
    exported: dict[str, str] = field(default_factory=dict)
    """What the steps wrote to $GITHUB_ENV, or an action exported."""
    log: list[str] = field(default_factory=list)


class WorkflowRunner:
    """Runs a repository's workflows (its checkout is `root`) with the given contexts."""

    def __init__(  # noqa: PLR0913 - the contexts GitHub gives a run
        self,
        root: Path,
        fakes: FakeCommands,
        actions: Mapping[str, ActionEmulator],
        *,
        github: Mapping[str, Any],
        secrets: Mapping[str, str] | None = None,
        variables: Mapping[str, str] | None = None,
        path: str | None = None,
    ) -> None:
        self.root = root
        self.fakes = fakes
        self.actions = actions
        self.github = dict(github)
        self.secrets = dict(secrets or {})
        self.vars = dict(variables or {})
        self.path = path or f"{fakes.bin}:{tool_env()['PATH']}"
        self.temp = fakes.root / "runner-temp"
        self.temp.mkdir(exist_ok=True)
        self.summary = self.temp / "step-summary.md"
        """What every step appended to its job's summary, all jobs together."""
        self._files = 0

    def run(self, workflow: str, inputs: Mapping[str, Any] | None = None) -> dict[str, JobResult]:
        """Every job of `.github/workflows/<workflow>`, in the order of their needs."""
        document = load_workflow(self.root / ".github" / "workflows" / workflow)
        results: dict[str, JobResult] = {}
        pending = dict(document["jobs"])
        while pending:
            job_id, job = next(
                (job_id, job)
                for job_id, job in pending.items()
                if all(need in results for need in needs_of(job))
            )
            del pending[job_id]
            results[job_id] = self._job(document, job, results, dict(inputs or {}))
        return results

    def _job(
        self,
        document: dict[str, Any],
        job: dict[str, Any],
        results: Mapping[str, JobResult],
        inputs: dict[str, Any],
    ) -> JobResult:
        needs = {need: results[need] for need in needs_of(job)}
        status = "success"
        if any(need.result == "failure" for need in needs.values()):
            status = "failure"
        elif any(need.result == "skipped" for need in needs.values()):
            status = "skipped"
        context = self._context(inputs) | {
            "needs": {name: {"result": r.result, "outputs": r.outputs} for name, r in needs.items()}
        }
        if not condition(job.get("if"), context, status):
            return JobResult("skipped")
        if "strategy" not in job:
            return self._single(document, job, context)
        legs = [
            (entry, self._single(document, job, context | {"matrix": entry}))
            for entry in matrix_entries(job["strategy"], context)
        ]
        # GitHub's needs context gives one result for all the runs, and the last run's outputs.
        failed = any(result.result == "failure" for _, result in legs)
        return JobResult(
            "failure" if failed else "success",
            legs[-1][1].outputs,
            "\n".join(result.log for _, result in legs),
            legs,
        )

    def _single(
        self, document: dict[str, Any], job: dict[str, Any], context: dict[str, Any]
    ) -> JobResult:
        if "uses" in job:
            return self._reusable(job, context)
        workflow_env = {
            name: render(value, context) for name, value in document.get("env", {}).items()
        }
        env = workflow_env | {
            name: render(value, context | {"env": workflow_env})
            for name, value in job.get("env", {}).items()
        }
        directory = job.get("defaults", {}).get("run", {}).get("working-directory")
        if directory is not None:
            env = env | {WORKING_DIRECTORY: render(directory, context)}
        run = self._steps(job["steps"], context, env)
        outputs = {
            name: render(value, context | {"steps": run.steps})
            for name, value in job.get("outputs", {}).items()
        }
        return JobResult(run.status, outputs, "\n".join(run.log))

    def _reusable(self, job: dict[str, Any], context: dict[str, Any]) -> JobResult:
        path = self._local(job["uses"])
        called = load_workflow(path)["on"]["workflow_call"]
        inputs: dict[str, Any] = {
            name: as_text(spec.get("default")) for name, spec in called["inputs"].items()
        }
        inputs |= {name: render(value, context) for name, value in job.get("with", {}).items()}
        # A boolean input is a boolean in the called workflow, not the text 'false'.
        for name, spec in called["inputs"].items():
            if spec.get("type") == "boolean":
                inputs[name] = inputs[name] in {"true", "True"}
        results = self.run(path.name, inputs)
        result = "failure" if any(r.result == "failure" for r in results.values()) else "success"
        jobs = {name: {"result": r.result, "outputs": r.outputs} for name, r in results.items()}
        outputs = {
            name: render(spec["value"], {"jobs": jobs})
            for name, spec in called.get("outputs", {}).items()
        }
        return JobResult(result, outputs, "\n".join(r.log for r in results.values()))

    def _context(self, inputs: Mapping[str, Any]) -> dict[str, Any]:
        return {
            "github": self.github,
            "secrets": self.secrets,
            "vars": self.vars,
            "inputs": inputs,
            "runner": {"temp": str(self.temp)},
        }

    def _steps(
        self, steps: list[dict[str, Any]], context: dict[str, Any], env: dict[str, Any]
    ) -> StepsRun:
        run = StepsRun()
        for step in steps:
            scope = context | {"steps": run.steps, "env": env | run.exported}
            if not condition(step.get("if"), scope, run.status):
                self._record_step(run, step, "skipped", {})
                continue
            step_env = (
                env
                | run.exported
                | {
                    name: render(value, scope, run.status)
                    for name, value in step.get("env", {}).items()
                }
            )
            if "run" in step:
                if "working-directory" in step:
                    step_env[WORKING_DIRECTORY] = render(step["working-directory"], scope)
                outcome, outputs, exported = self._script(step["run"], step_env, run.log)
            else:
                outcome, outputs, exported = self._action(step, scope, step_env, run)
            run.exported |= exported
            self._record_step(run, step, outcome, outputs)
            if outcome == "failure":
                run.status = "failure"
        return run

    @staticmethod
    def _record_step(
        run: StepsRun, step: dict[str, Any], outcome: str, outputs: dict[str, str]
    ) -> None:
        if "id" in step:
            run.steps[step["id"]] = {"outcome": outcome, "conclusion": outcome, "outputs": outputs}

    def _script(
        self, script: str, env: Mapping[str, str], log: list[str]
    ) -> tuple[str, dict[str, str], dict[str, str]]:
        self._files += 1
        output = self.temp / f"output-{self._files}"
        exported = self.temp / f"env-{self._files}"
        # Empty, even when an earlier runner on the same fakes wrote a file of that name.
        output.write_text("")
        exported.write_text("")
        github = self.github
        variables = dict(env)
        directory = self.root / variables.pop(WORKING_DIRECTORY, ".")
        result = subprocess.run(  # noqa: S603 - a workflow step's own script
            ["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", script],
            cwd=directory,
            env={
                **tool_env(),
                "PATH": self.path,
                "RUNNER_TEMP": str(self.temp),
                "GITHUB_OUTPUT": str(output),
                "GITHUB_ENV": str(exported),
                "GITHUB_STEP_SUMMARY": str(self.summary),
                "GITHUB_SHA": github["sha"],
                "GITHUB_REF": github["ref"],
                "GITHUB_REPOSITORY": github["repository"],
                "GITHUB_RUN_ID": str(github["run_id"]),
                **variables,
            },
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            check=False,
            timeout=300,
        )
        log.append(f"$ {script}\n{result.stdout}{result.stderr}")
        outcome = "success" if result.returncode == 0 else "failure"
        return outcome, key_values(output.read_text()), key_values(exported.read_text())

    def _action(
        self, step: dict[str, Any], scope: dict[str, Any], env: dict[str, str], run: StepsRun
    ) -> tuple[str, dict[str, str], dict[str, str]]:
        inputs = {
            name: render(value, scope, run.status) for name, value in step.get("with", {}).items()
        }
        uses = str(step["uses"])
        if uses.startswith(("$/", "./")):
            return self._composite(self._local(uses) / "action.yml", inputs, scope, env, run)
        action = uses.split("@", maxsplit=1)[0]
        if action not in self.actions:
            pytest.fail(f"the test has no emulator for {action}", pytrace=False)
        files = {
            value: Path(value).read_text()
            for value in inputs.values()
            if value.startswith("/") and Path(value).is_file()
        }
        arguments = [f"{key}={value}" for key, value in sorted(inputs.items())]
        self.fakes.record(f"uses:{action}", arguments, files)
        emulated = self.actions[action](inputs)
        return "success", emulated.outputs, emulated.env

    def _composite(
        self,
        path: Path,
        inputs: dict[str, str],
        scope: dict[str, Any],
        env: dict[str, str],
        outer: StepsRun,
    ) -> tuple[str, dict[str, str], dict[str, str]]:
        action = load_workflow(path)
        defaults = {
            name: as_text(spec.get("default")) for name, spec in action.get("inputs", {}).items()
        }
        context = scope | {"inputs": defaults | inputs}
        run = self._steps(action["runs"]["steps"], context, env)
        outer.log.extend(run.log)
        outputs = {
            name: render(spec["value"], context | {"steps": run.steps})
            for name, spec in action.get("outputs", {}).items()
        }
        return run.status, outputs, run.exported

    def _local(self, uses: str) -> Path:
        return self.root / uses.split("/", 1)[1]


def needs_of(job: Mapping[str, Any]) -> list[str]:
    needs = job.get("needs", [])
    return [needs] if isinstance(needs, str) else list(needs)


def key_values(text: str) -> dict[str, str]:
    """What a step wrote to $GITHUB_OUTPUT or $GITHUB_ENV (`name=value` lines)."""
    return dict(line.split("=", 1) for line in text.splitlines() if "=" in line)
