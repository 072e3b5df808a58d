"""The template repository's own workflows (.github/workflows): CI and release.

They pass the same static checks as the workflows the template generates (the GitHub workflow
schema, zizmor), keep to the rules those follow (actions pinned to commits, least privilege, no
persisted credentials), agree with the Makefile, and the CI's test groups run the whole suite,
each test once. The release workflow's helper script is tested here too.
"""

from __future__ import annotations

import base64
import re
import ssl
import sys
import tomllib
import urllib.error
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from fleet.simple_index import add_to_index
from harness.commands import REPO_ROOT, run
from harness.core_index import PrivateIndex, serving_private_index
from harness.template_repo import current_version
from tests.tools import dev_tool, load_workflow, workflow_steps

WORKFLOWS_DIR = REPO_ROOT / ".github" / "workflows"
WORKFLOWS = sorted(WORKFLOWS_DIR.glob("*.yml"))
RELEASE_SCRIPT = REPO_ROOT / ".github" / "scripts" / "release.py"
PYTHON_VERSIONS = {"3.11", "3.12", "3.13"}


@pytest.fixture(scope="module")
def ci() -> dict[str, Any]:
    return load_workflow(WORKFLOWS_DIR / "ci.yml")


@pytest.fixture(scope="module")
def release() -> dict[str, Any]:
    return load_workflow(WORKFLOWS_DIR / "release.yml")


def test_the_ci_and_release_workflows_exist() -> None:
    assert {path.name for path in WORKFLOWS} >= {"ci.yml", "release.yml"}


# Static checks: the same as on the generated services' workflows.


@pytest.mark.parametrize("workflow", WORKFLOWS, ids=lambda path: path.name)
def test_workflow_matches_the_github_workflow_schema(workflow: Path) -> None:
    check_jsonschema = dev_tool("check-jsonschema")
    run([check_jsonschema, "--builtin-schema", "vendor.github-workflows", workflow])


def test_zizmor_finds_nothing() -> None:
    zizmor = dev_tool("zizmor")
    args = ["--offline", "--no-ignores", "--no-config", str(WORKFLOWS_DIR)]
    result = run([zizmor, *args], cwd=REPO_ROOT, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "No findings to report" in result.stdout + result.stderr


@pytest.mark.parametrize("workflow", WORKFLOWS, ids=lambda path: path.name)
def test_yamllint_is_clean_with_the_services_config(workflow: Path) -> None:
    config = REPO_ROOT / "template" / ".yamllint.yaml"
    run([dev_tool("yamllint"), "--strict", "--config-file", config, workflow], cwd=REPO_ROOT)


# The rules the generated workflows follow, applied to the repository's own.

USES = re.compile(r"^\s*(?:-\s+)?uses:\s*(?P<ref>\S+)(?P<comment>.*)$")
PINNED = re.compile(r"(?P<action>[\w.-]+/[\w./-]+)@(?P<sha>[0-9a-f]{40})")
VERSION_COMMENT = re.compile(r"^\s+#\s+(?P<version>v\d+(\.\d+){0,2})\b")


def action_pins(path: Path) -> list[tuple[str, str, str]]:
    """(action, commit, version comment) of every remote `uses:`; local ones are left out."""
    pins = []
    for line in path.read_text().splitlines():
        match = USES.match(line)
        if not match or match["ref"].startswith(("./", "$/")):
            continue
        pinned = PINNED.fullmatch(match["ref"])
        version = VERSION_COMMENT.match(match["comment"])
        assert pinned, f"{path.name}: `{line.strip()}` is not pinned to a full commit SHA"
        assert version, f"{path.name}: `{line.strip()}` does not name its version in a comment"
        pins.append((pinned["action"], pinned["sha"], version["version"]))
    return pins


@pytest.mark.parametrize("workflow", WORKFLOWS, ids=lambda path: path.name)
def test_every_action_is_pinned_to_a_commit_with_its_version(workflow: Path) -> None:
    assert action_pins(workflow)


def test_each_action_has_one_pin_across_the_repository_and_its_services() -> None:
    """The same action at the same commit here and in the generated workflows: one upgrade path."""
    github = REPO_ROOT / "template" / ".github"
    generated = sorted([*github.glob("workflows/*"), *github.glob("actions/*/action.yml*")])
    pins: dict[str, set[tuple[str, str]]] = {}
    for path in [*WORKFLOWS, *generated]:
        for action, sha, version in action_pins(path):
            pins.setdefault(action, set()).add((sha, version))
    assert {action: found for action, found in pins.items() if len(found) > 1} == {}


@pytest.mark.parametrize("workflow", WORKFLOWS, ids=lambda path: path.name)
def test_checkouts_do_not_persist_credentials(workflow: Path) -> None:
    checkouts = [
        (job, step)
        for job, step in workflow_steps(load_workflow(workflow))
        if str(step.get("uses", "")).startswith("actions/checkout@")
    ]
    assert checkouts
    for job, step in checkouts:
        assert step.get("with", {}).get("persist-credentials") is False, job


@pytest.mark.parametrize("workflow", WORKFLOWS, ids=lambda path: path.name)
def test_permissions_are_read_only_unless_a_job_needs_more(workflow: Path) -> None:
    document = load_workflow(workflow)
    assert document["permissions"] == {"contents": "read"}
    granted = {
        job_id: job["permissions"]
        for job_id, job in document["jobs"].items()
        if "permissions" in job
    }
    needed = {
        "release.yml": {
            "publish-core": {"contents": "read", "id-token": "write"},
            "github-release": {"contents": "write"},
            "untag": {"contents": "write"},
        },
        "publish-core.yml": {"publish": {"contents": "read", "id-token": "write"}},
        "core-fleet.yml": {"try": {"contents": "read", "id-token": "write"}},
    }
    assert granted == needed.get(workflow.name, {})


@pytest.mark.parametrize("workflow", WORKFLOWS, ids=lambda path: path.name)
def test_runs_are_grouped_for_concurrency(workflow: Path) -> None:
    concurrency = load_workflow(workflow)["concurrency"]
    assert "${{ github.ref }}" in concurrency["group"]


@pytest.mark.parametrize("workflow", WORKFLOWS, ids=lambda path: path.name)
def test_every_job_has_a_timeout(workflow: Path) -> None:
    for job_id, job in load_workflow(workflow)["jobs"].items():
        assert "uses" in job or job.get("timeout-minutes"), job_id


# CI and local runs agree.


def makefile_value(name: str) -> str:
    match = re.search(rf"^{name}\s*:?=\s*(.+)$", (REPO_ROOT / "Makefile").read_text(), re.MULTILINE)
    assert match, f"the Makefile sets no {name}"
    return match.group(1).strip()


def makefile_recipe(target: str) -> list[str]:
    lines = (REPO_ROOT / "Makefile").read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(f"{target}:"))
    recipe = []
    for line in lines[start + 1 :]:
        if not line.startswith("\t"):
            break
        recipe.append(line.strip().replace("$(UV)", "uv"))
    return recipe


@pytest.mark.parametrize("workflow", WORKFLOWS, ids=lambda path: path.name)
def test_uv_is_the_version_the_makefile_installs(workflow: Path) -> None:
    version = makefile_value("UV_VERSION")
    setups = [
        s
        for _, s in workflow_steps(load_workflow(workflow))
        if "astral-sh/setup-uv@" in s.get("uses", "")
    ]
    assert setups
    for step in setups:
        assert step["with"]["version"] == version


def test_the_makefile_and_the_dev_tools_agree_on_uv() -> None:
    dev = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["dependency-groups"]["dev"]
    assert f"uv=={makefile_value('UV_VERSION')}" in dev


def test_ci_lints_with_make_lint(ci: dict[str, Any]) -> None:
    assert makefile_recipe("lint"), "the Makefile has no lint recipe"
    runs = [step.get("run", "") for step in ci["jobs"]["lint"]["steps"]]
    assert "make lint" in runs


def test_ci_tests_with_the_makefile_test_command(ci: dict[str, Any]) -> None:
    (command,) = makefile_recipe("test")
    test_run = ci["jobs"]["tests"]["steps"][-1]["run"]
    assert f"{command} -c pyproject.toml $PYTEST_PATHS" in test_run


def test_ci_installs_every_python_a_service_can_choose(ci: dict[str, Any]) -> None:
    copier = yaml.safe_load((REPO_ROOT / "copier.yml").read_text())
    assert set(copier["python_version"]["choices"]) == PYTHON_VERSIONS
    for job_id in ("lint", "tests"):
        (setup,) = [s for s in ci["jobs"][job_id]["steps"] if "setup-python@" in s.get("uses", "")]
        installed = set(str(setup["with"]["python-version"]).split())
        assert installed == (PYTHON_VERSIONS if job_id == "tests" else {"3.11"}), job_id


def test_ci_caches_uv(ci: dict[str, Any]) -> None:
    for job_id, step in workflow_steps(ci):
        if "astral-sh/setup-uv@" in step.get("uses", ""):
            assert step["with"]["enable-cache"] is True, job_id


def test_ci_gives_the_tests_a_postgres_server(ci: dict[str, Any]) -> None:
    job = ci["jobs"]["tests"]
    assert job["services"]["postgres"]["image"].startswith("postgres:")
    assert job["services"]["postgres"]["ports"] == ["5432:5432"]
    assert job["env"]["TEST_DATABASE_URL"].startswith(
        "postgresql://postgres:postgres@127.0.0.1:5432/"
    )


def test_ci_runs_on_pull_requests_pushes_and_for_the_release(ci: dict[str, Any]) -> None:
    assert {"pull_request", "push", "workflow_call"} <= set(ci["on"])


# The CI's test groups: together, the whole suite, each test once.


CONFIG = ("-c", "pyproject.toml")  # as the CI's test command: `make test`'s configuration


def collect(*args: str) -> set[str] | str:
    """The node ids pytest collects for these arguments (running nothing), or its error output."""
    result = run(
        [
            sys.executable,
            "-m",
            "pytest",
            "--collect-only",
            "-q",
            "-p",
            "no:cacheprovider",
            *CONFIG,
            *args,
        ],
        cwd=REPO_ROOT,
        check=False,
    )
    if result.returncode != 0:
        errors = result.stdout[max(result.stdout.find(" ERRORS "), 0) :][-3000:]
        return f"pytest {' '.join(args) or '(the whole suite)'}:\n{errors}{result.stderr[-3000:]}"
    return {line for line in result.stdout.splitlines() if "::" in line}


def group_args(entry: dict[str, str]) -> tuple[list[str], list[str]]:
    """A CI group's pytest arguments, its globs expanded as the job's shell expands them (none
    when a pattern matches no file: the job fails), and the patterns that match nothing."""
    paths, unmatched = [], []
    for pattern in entry["paths"].split():
        matches = sorted(str(p.relative_to(REPO_ROOT)) for p in REPO_ROOT.glob(pattern))
        paths += matches
        unmatched += [] if matches else [f"{entry['group']}: {pattern}"]
    if unmatched:
        return [], unmatched
    return [*paths, *(["-k", entry["select"]] if entry.get("select") else [])], []


def test_ci_test_groups_run_the_whole_suite_each_test_once(ci: dict[str, Any]) -> None:
    runnable: dict[str, list[str]] = {}
    unmatched: list[str] = []
    for entry in ci["jobs"]["tests"]["strategy"]["matrix"]["include"]:
        args, missing = group_args(entry)
        unmatched += missing
        if args:
            runnable[entry["group"]] = args
    with ThreadPoolExecutor(max_workers=4) as pool:
        whole = pool.submit(collect)
        collected = pool.map(lambda args: collect(*args), runnable.values())
        results = dict(zip(runnable, collected, strict=True))
    failed = [result for result in [whole.result(), *results.values()] if isinstance(result, str)]
    selected = {group: ids for group, ids in results.items() if not isinstance(ids, str)}
    suite = whole.result()
    counted: dict[str, list[str]] = {}
    for group, ids in selected.items():
        for node in ids:
            counted.setdefault(node, []).append(group)
    problems = {
        "collection errors": failed,
        "patterns that match no test file": unmatched,
        "groups that select no test": sorted(group for group, ids in selected.items() if not ids),
        "tests that no group runs": [] if failed else sorted(set(suite) - counted.keys()),
        "tests that several groups run": sorted(n for n, gs in counted.items() if len(gs) > 1),
    }
    report = "\n".join(
        f"{problem}:\n  " + "\n  ".join(found) for problem, found in problems.items() if found
    )
    assert not report, report


# The release workflow.


def test_release_runs_on_version_tags_only(release: dict[str, Any]) -> None:
    assert release["on"] == {"push": {"tags": ["v*.*.*"]}}


def test_release_checks_the_changelog_then_runs_the_whole_ci(release: dict[str, Any]) -> None:
    jobs = release["jobs"]
    changelog_runs = " ".join(step.get("run", "") for step in jobs["changelog"]["steps"])
    assert ".github/scripts/release.py notes" in changelog_runs
    assert jobs["ci"]["uses"] == "$/.github/workflows/ci.yml"
    assert jobs["ci"]["needs"] == "changelog"


def test_release_publishes_the_core_through_oidc_only_when_new(release: dict[str, Any]) -> None:
    caller = release["jobs"]["publish-core"]
    assert caller["needs"] == ["ci", "core-api"]
    assert caller["uses"] == "$/.github/workflows/publish-core.yml"
    job = load_workflow(WORKFLOWS_DIR / "publish-core.yml")["jobs"]["publish"]
    uses = [step.get("uses", "") for step in job["steps"]]
    assert any(use.startswith("aws-actions/configure-aws-credentials@") for use in uses)
    aws = next(s for s in job["steps"] if "configure-aws-credentials@" in s.get("uses", ""))
    assert aws["with"]["role-to-assume"] == "${{ vars.AWS_RELEASE_ROLE_ARN }}"
    assert not any("aws-access-key-id" in step.get("with", {}) for step in job["steps"])
    script = "\n".join(step.get("run", "") for step in job["steps"])
    assert "uv build --out-dir dist/core core" in script
    assert "aws codeartifact get-authorization-token" in script
    assert 'release.py unpublished "${index}simple/" dist/core/*' in script
    assert re.search(r"UV_PUBLISH_USERNAME=aws UV_PUBLISH_PASSWORD=\"\$token\"", script)
    assert re.search(r"uv publish --publish-url \S+ --check-url ", script)
    # A release builds what it publishes from nothing cached (cache poisoning).
    setup_uv = next(s for s in job["steps"] if "setup-uv@" in s.get("uses", ""))
    assert setup_uv["with"]["enable-cache"] is False


def test_a_core_candidate_tag_is_checked_then_published_on_its_own() -> None:
    workflow = load_workflow(WORKFLOWS_DIR / "publish-core.yml")
    assert workflow["on"] == {"push": {"tags": ["core-v*"]}, "workflow_call": None}
    candidate, publish = workflow["jobs"]["candidate"], workflow["jobs"]["publish"]
    assert candidate["if"] == "${{ startsWith(github.ref, 'refs/tags/core-v') }}"
    script = "\n".join(step.get("run", "") for step in candidate["steps"])
    for command in ("release.py core-candidate", "pytest", "release.py core-api"):
        assert command in script, command
    # Called by release.yml the candidate job is skipped, and the publish must still run.
    assert publish["needs"] == "candidate"
    assert publish["if"] == "${{ !failure() && !cancelled() }}"


@pytest.mark.parametrize(
    ("tag", "version", "message"),
    [
        ("core-v1.3.0rc1", "1.3.0rc1", ""),
        ("core-v1.3.0b2", "1.3.0b2", ""),
        ("core-v1.3.0rc2", "1.3.0rc1", "does not name the core's version: tag core-v1.3.0rc1"),
        ("core-v1.3.0", "1.3.0", "is not a pre-release"),
    ],
)
def test_a_core_candidate_is_a_pre_release_named_by_its_tag(
    tmp_path: Path, tag: str, version: str, message: str
) -> None:
    pyproject = tmp_path / "pyproject.toml"
    pyproject.write_text(f'[project]\nname = "smplkit-core"\nversion = "{version}"\n')
    code, out, errors = release_script("core-candidate", tag, "--pyproject", str(pyproject))
    if message:
        assert code == 1
        assert message in errors
    else:
        assert (code, out) == (0, f"release: the core {version} is a release candidate\n")


def test_release_creates_the_github_release_with_the_changelog_notes(
    release: dict[str, Any],
) -> None:
    job = release["jobs"]["github-release"]
    assert job["needs"] == "publish-core"
    script = "\n".join(step.get("run", "") for step in job["steps"])
    assert 'release.py notes "$TAG" > "$RUNNER_TEMP/notes.md"' in script
    assert re.search(
        r'gh release create "\$TAG" .*--notes-file "\$RUNNER_TEMP/notes.md"', script, re.DOTALL
    )


# The release workflow's script.


def release_script(*args: str, check: bool = False, **env: str) -> tuple[int, str, str]:
    result = run([sys.executable, RELEASE_SCRIPT, *args], cwd=REPO_ROOT, env=env, check=check)
    return result.returncode, result.stdout, result.stderr


def test_release_notes_of_the_current_version_are_its_changelog_entry() -> None:
    version = current_version()
    code, notes, _ = release_script("notes", version)
    assert code == 0
    changelog = (REPO_ROOT / "CHANGELOG.md").read_text()
    assert notes.strip()
    assert notes.strip() in changelog
    assert "## " not in notes


CHANGELOG = """# Changelog

## v1.10.0 - 2026-12-01

- Ten.

## v1.1.0 - 2026-11-30

- Migrations: `v1.1.0-rename`.

## v1.0.2 - 2026-11-29

## v1.0.0 - 2026-11-21

First release.
"""


@pytest.mark.parametrize(
    ("tag", "expected"),
    [
        ("v1.1.0", "- Migrations: `v1.1.0-rename`.\n"),
        ("v1.10.0", "- Ten.\n"),
        ("v1.0.0", "First release.\n"),
    ],
)
def test_release_notes_are_the_entry_of_exactly_that_tag(
    tmp_path: Path, tag: str, expected: str
) -> None:
    changelog = tmp_path / "CHANGELOG.md"
    changelog.write_text(CHANGELOG)
    assert release_script("notes", tag, "--changelog", str(changelog)) == (0, expected, "")


@pytest.mark.parametrize(
    ("tag", "message"),
    [
        ("v1.2.0", "CHANGELOG.md has no entry for v1.2.0"),
        ("v1.0.1", "CHANGELOG.md has no entry for v1.0.1"),
        ("v1.0.2", "the CHANGELOG.md entry for v1.0.2 is empty"),
        ("1.1.0", "is not a release version vX.Y.Z"),
        ("v1.1", "is not a release version vX.Y.Z"),
    ],
)
def test_a_release_without_a_changelog_entry_is_refused(
    tmp_path: Path, tag: str, message: str
) -> None:
    changelog = tmp_path / "CHANGELOG.md"
    changelog.write_text(CHANGELOG)
    code, notes, errors = release_script("notes", tag, "--changelog", str(changelog))
    assert (code, notes) == (1, "")
    assert message in errors


def test_core_version_is_the_cores_own() -> None:
    core = tomllib.loads((REPO_ROOT / "core" / "pyproject.toml").read_text())["project"]
    assert release_script("core-version") == (0, f"{core['version']}\n", "")


@pytest.fixture
def index(tmp_path: Path) -> Iterator[tuple[Path, PrivateIndex]]:
    """An empty simple-API index served as CodeArtifact serves it (HTTPS, to the user aws with a
    password): (folder, index)."""
    root = tmp_path / "simple"
    root.mkdir()
    with serving_private_index(root, tmp_path) as served:
        yield root, served


def test_each_served_index_has_a_url_of_its_own(tmp_path: Path) -> None:
    """uv caches an index's pages by URL: a server on a port an earlier one used must not share
    its URLs, or a lock is made from the earlier index's pages."""
    (tmp_path / "simple").mkdir()
    urls = []
    for name in ("first", "second"):
        (tmp_path / name).mkdir()
        with serving_private_index(tmp_path / "simple", tmp_path / name) as served:
            urls.append(served.url)
            root = urlsplit(served.url)._replace(path="/").geturl()
            request = urllib.request.Request(root)  # noqa: S310 - the loopback server above
            credentials = base64.b64encode(f"aws:{served.password}".encode()).decode()
            request.add_header("Authorization", f"Basic {credentials}")
            context = ssl.create_default_context(cafile=served.ca_bundle)
            with pytest.raises(urllib.error.HTTPError, match="404"):
                urllib.request.urlopen(request, context=context)  # noqa: S310
    assert urlsplit(urls[0]).path != urlsplit(urls[1]).path


def core_files(folder: Path, version: str) -> list[Path]:
    """Placeholder wheel and sdist named as `uv build` names the core's (only names are read)."""
    folder.mkdir(parents=True, exist_ok=True)
    files = [
        folder / f"smplkit_core-{version}-py3-none-any.whl",
        folder / f"smplkit_core-{version}.tar.gz",
    ]
    for file in files:
        file.write_bytes(b"")
    return files


def unpublished(
    served: PrivateIndex, files: list[Path], password: str | None = None
) -> tuple[int, list[str], str]:
    code, out, errors = release_script(
        "unpublished",
        served.url,
        *map(str, files),
        INDEX_USERNAME="aws",
        INDEX_PASSWORD=password or served.password,
        SSL_CERT_FILE=str(served.ca_bundle),
    )
    return code, [Path(line).name for line in out.splitlines()], errors


def test_only_files_the_index_lacks_are_published(
    tmp_path: Path, index: tuple[Path, PrivateIndex]
) -> None:
    root, served = index
    built = core_files(tmp_path / "dist", "1.1.0")
    names = [file.name for file in built]
    add_to_index(root, "smplkit-core", core_files(tmp_path / "old", "1.0.0"))
    assert unpublished(served, built) == (0, names, "")
    # A publish that stopped after the wheel: only the sdist is left to upload.
    add_to_index(root, "smplkit-core", built[:1])
    assert unpublished(served, built) == (0, names[1:], "")
    add_to_index(root, "smplkit-core", built[1:])
    assert unpublished(served, built) == (0, [], "")


def test_a_version_released_before_is_not_published_again(
    tmp_path: Path, index: tuple[Path, PrivateIndex]
) -> None:
    """Rebuilt files of a version on the index (other bytes, same names) are left alone."""
    root, served = index
    add_to_index(root, "smplkit-core", core_files(tmp_path / "released", "1.0.0"))
    rebuilt = core_files(tmp_path / "dist", "1.0.0")
    rebuilt[0].write_bytes(b"rebuilt")
    assert unpublished(served, rebuilt) == (0, [], "")


def test_everything_is_published_to_an_index_that_never_saw_the_core(
    tmp_path: Path, index: tuple[Path, PrivateIndex]
) -> None:
    built = core_files(tmp_path / "dist", "1.0.0")
    assert unpublished(index[1], built) == (0, [file.name for file in built], "")


def test_unpublished_fails_on_refused_credentials(
    tmp_path: Path, index: tuple[Path, PrivateIndex]
) -> None:
    root, served = index
    add_to_index(root, "smplkit-core", core_files(tmp_path / "old", "1.0.0"))
    code, files, errors = unpublished(
        served, core_files(tmp_path / "dist", "1.0.0"), password="wrong"
    )
    assert (code, files) == (1, [])
    assert "answered 401" in errors


def test_the_core_is_owned_by_the_reviewers_of_shared_code() -> None:
    """The repository's CODEOWNERS gives core/ the owners every workspace's lib/ gets."""
    questions = yaml.safe_load((REPO_ROOT / "copier.yml").read_text())
    rules = [
        line.split()
        for line in (REPO_ROOT / ".github" / "CODEOWNERS").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert rules == [["/core/", questions["shared_code_reviewers"]["default"]]]
