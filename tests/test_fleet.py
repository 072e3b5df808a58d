"""`fleet report` and `fleet update` on a fleet of local repositories (harness.fleet), and
Renovate's copier manager on one of its services."""

from __future__ import annotations

import base64
import json
import re
import shutil
import subprocess
import sys
import urllib.parse
import urllib.request
import zipfile
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from fleet import index, simple_index
from fleet.sources import Repository, read_fleet_file, repository
from harness.commands import REPO_ROOT, git, run
from harness.fleet import (
    LATEST,
    TEAM_DOCKERFILE,
    TEAM_GITIGNORE,
    TEMPLATE_GITIGNORE,
    TOPIC,
    TOPIC_REPOSITORIES,
    Fleet,
    build_fleet,
)
from harness.template_repo import commit_all
from hooks import post_copy
from tests.backstage_catalog import entity_ref, read_entities
from tests.tools import dev_tool, require_tool
from tests.update_support import TeamWork

pytestmark = pytest.mark.xdist_group("fleet")

CHROMIUM_HINT = "the HTML report is checked in a real browser: apt-get install chromium"


@pytest.fixture(scope="session")
def fleet(tmp_path_factory: pytest.TempPathFactory, core_index_url: str) -> Fleet:
    index_folder = Path(urllib.request.url2pathname(urllib.parse.urlsplit(core_index_url).path))
    return build_fleet(tmp_path_factory.mktemp("fleet"), index_folder)


def run_fleet(
    fleet: Fleet, *args: str, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """`fleet ARGS` as a platform team runs it, on the test fleet (fake gh, acme/ names local)."""
    return run(
        [sys.executable, "-m", "fleet", *args], cwd=cwd or fleet.root, env=fleet.env, check=False
    )


@pytest.fixture(scope="session")
def fleet_report(fleet: Fleet) -> tuple[subprocess.CompletedProcess[str], Path]:
    """One `fleet report` of the whole fleet: its output and its folder of files."""
    output = fleet.root / "report"
    done = run_fleet(fleet, "report", "--fleet", str(fleet.fleet_file), "--output", str(output))
    return done, output


def report_lines(output: Path) -> dict[str, dict[str, Any]]:
    document = json.loads((output / "fleet.json").read_text())
    return {line["service"]: line for line in document["services"]}


def test_the_report_is_exact_for_every_service(
    fleet: Fleet, fleet_report: tuple[subprocess.CompletedProcess[str], Path]
) -> None:
    done, output = fleet_report
    assert done.returncode == 0, done.stdout + done.stderr
    lines = report_lines(output)
    assert len([name for name, want in fleet.expected.items() if want.error is None]) >= 20
    assert sorted(lines) == sorted(fleet.expected)
    for name, want in fleet.expected.items():
        line = lines[name]
        if want.error is not None:
            assert want.error in (line["error"] or ""), (name, line)
            continue
        pull_requests = line["pull_requests"]
        got = {
            "error": line["error"],
            "version": line["version"],
            "latest": line["latest"],
            "behind": line["behind"],
            "layout": line["layout"],
            "database": line["database"],
            "python": line["python"],
            "core": (line["core"]["locked"], line["core"]["newest"], line["core"]["behind"]),
            "pull_requests": None
            if pull_requests is None
            else [(pr["branch"], pr["age_days"]) for pr in pull_requests],
            "leftovers": line["leftovers"],
        }
        assert got == {
            "error": None,
            "version": want.version,
            "latest": LATEST,
            "behind": want.behind,
            "layout": want.layout,
            "database": want.database,
            "python": want.python,
            "core": (want.core_locked, want.core_newest, want.core_locked != want.core_newest),
            "pull_requests": want.pull_requests,
            "leftovers": want.leftovers,
        }, name


def test_the_facts_file_holds_each_entity_once_with_the_report_s_values(
    fleet: Fleet, fleet_report: tuple[subprocess.CompletedProcess[str], Path], tmp_path: Path
) -> None:
    """fleet-facts.json, what a portal's Tech Insights reads: one entry per entity reference (as
    the service's catalog-info.yaml names it), holding exactly what the report says of it."""
    _, output = fleet_report
    document = json.loads((output / "fleet-facts.json").read_text())
    lines = report_lines(output)
    readable = [line for line in lines.values() if line["error"] is None]
    assert sorted(document["entities"]) == sorted(line["entity"] for line in readable)
    assert len(document["entities"]) == len(readable) >= 20
    for reference, entry in document["entities"].items():
        line = lines[entry["service"]]
        assert line["entity"] == reference
        pull_requests = line["pull_requests"]
        assert entry["facts"] == {
            "templateVersion": line["version"],
            "templateLatest": line["latest"],
            "templateReleasesBehind": line["behind"],
            "coreLocked": line["core"]["locked"],
            "coreNewest": line["core"]["newest"],
            "coreBehind": line["core"]["behind"],
            "openUpdatePullRequests": None if pull_requests is None else len(pull_requests),
            "oldestUpdatePullRequestDays": None
            if pull_requests is None
            else max((pr["age_days"] for pr in pull_requests), default=0),
            "leftovers": line["leftovers"],
            "lastCoreBump": line["core"]["last_bump"],
        }, reference
        assert set(entry["facts"]) == set(document["retriever"]["schema"])
    s05 = document["entities"]["component:default/s05"]["facts"]
    assert (s05["openUpdatePullRequests"], s05["oldestUpdatePullRequestDays"]) == (1, 12)
    # The newest merged core-bump pull request (MERGED_PULL_REQUESTS), for each service.
    bumps = {line["service"]: line["core"]["last_bump"] for line in readable}
    generated = datetime.fromisoformat(json.loads((output / "fleet.json").read_text())["generated"])
    assert (generated - datetime.fromisoformat(bumps.pop("acme/s07"))).days == 4
    assert set(bumps.values()) == {None}
    # The reference is the one Backstage reads from the service's catalog-info.yaml; a workspace
    # member without one gets the template's own.
    for path in ("catalog-info.yaml", "openapi.json"):
        (tmp_path / path).write_text(git("show", f"main:{path}", cwd=fleet.remotes["acme/s07"]))
    component = read_entities(tmp_path / "catalog-info.yaml")[0]
    assert entity_ref(component) == lines["acme/s07"]["entity"] == "component:default/s07"
    assert lines["acme/w01/projects/api"]["entity"] == "component:default/api"


def test_a_service_listed_twice_is_one_entity_of_the_facts(fleet: Fleet, tmp_path: Path) -> None:
    fleet_file = tmp_path / "fleet.yml"
    fleet_file.write_text(f"services:\n  - {fleet.remotes['acme/s08']}\n  - acme/s08\n")
    done = run_fleet(fleet, "report", "--fleet", str(fleet_file), "--output", str(tmp_path))
    assert done.returncode == 0, done.stderr
    document = json.loads((tmp_path / "fleet-facts.json").read_text())
    assert list(document["entities"]) == ["component:default/s08"]
    assert document["entities"]["component:default/s08"]["service"] == "s08"
    assert "acme/s08: component:default/s08 is another's too: not in the facts" in done.stdout


def test_the_terminal_and_markdown_give_every_line(
    fleet: Fleet, fleet_report: tuple[subprocess.CompletedProcess[str], Path]
) -> None:
    done, output = fleet_report
    markdown = (output / "fleet.md").read_text()
    rows = [line for line in markdown.splitlines() if line.startswith("| ")][1:]
    assert len(rows) == len(fleet.expected)
    for name, want in fleet.expected.items():
        assert name in done.stdout, name
        (row,) = [row for row in rows if row.startswith(f"| {name} |")]
        cells = [cell.strip() for cell in row.strip("|").split(" | ")]
        if want.error:
            assert f"error: {want.error}" in cells[1], row
        else:
            assert cells[2] == str(want.behind), row
    assert "| acme/s09 |" in markdown
    assert "config/limits.toml" in next(row for row in rows if row.startswith("| acme/s09 |"))


def test_bad_entries_fail_the_run_only_with_strict(fleet: Fleet, tmp_path: Path) -> None:
    fleet_file = tmp_path / "fleet.yml"
    remote = fleet.remotes["acme/s08"]
    fleet_file.write_text(f"services:\n  - {remote}\n  - acme/malformed\n")
    lenient = run_fleet(fleet, "report", "--fleet", str(fleet_file), "--output", str(tmp_path))
    assert lenient.returncode == 0, lenient.stderr
    lines = report_lines(tmp_path)
    assert lines["s08"]["error"] is None
    assert lines["s08"]["behind"] == 0
    assert "malformed .copier-answers.yml (line 3)" in lines["acme/malformed"]["error"]
    strict = run_fleet(
        fleet, "report", "--strict", "--fleet", str(fleet_file), "--output", str(tmp_path)
    )
    assert strict.returncode == 1, strict.stdout


def test_pull_requests_are_unknown_when_gh_is_not_logged_in(fleet: Fleet, tmp_path: Path) -> None:
    fleet_file = tmp_path / "fleet.yml"
    fleet_file.write_text("services: [acme/s05]\n")
    env = {**fleet.env, "FAKE_GH_LOGGED_OUT": "1"}
    done = run(
        [
            sys.executable,
            "-m",
            "fleet",
            "report",
            "--fleet",
            str(fleet_file),
            "--output",
            str(tmp_path),
        ],
        cwd=fleet.root,
        env=env,
    )
    assert "unknown" in done.stdout
    assert report_lines(tmp_path)["acme/s05"]["pull_requests"] is None


def test_a_fleet_file_that_is_not_a_list_is_refused(fleet: Fleet, tmp_path: Path) -> None:
    fleet_file = tmp_path / "fleet.yml"
    fleet_file.write_text("services: acme/s01\n")
    done = run_fleet(fleet, "report", "--fleet", str(fleet_file), "--output", str(tmp_path))
    assert done.returncode == 2
    assert "`services` must be a list of repositories" in done.stdout
    assert not (tmp_path / "fleet.json").exists()


def test_fleet_file_entries_name_github_repositories_urls_or_paths(tmp_path: Path) -> None:
    (tmp_path / "local").mkdir()
    (tmp_path / "fleet.yml").write_text(
        "services:\n  - acme/orders\n  - https://gitlab.example.com/team/billing.git\n"
        "  - git@github.com:acme/search.git\n  - local\n"
    )
    assert read_fleet_file(tmp_path / "fleet.yml") == [
        Repository("acme/orders", "https://github.com/acme/orders.git"),
        Repository("billing", "https://gitlab.example.com/team/billing.git"),
        Repository("acme/search", "git@github.com:acme/search.git"),
        Repository("local", (tmp_path / "local").as_uri()),
    ]
    assert repository("acme/orders", tmp_path).github == "acme/orders"
    assert repository("https://gitlab.example.com/team/billing.git", tmp_path).github is None


def test_the_repository_s_own_fleet_file_is_read_by_fleet_and_the_release() -> None:
    """The core's release reads fleet.yml's `services` with yq: GitHub owner/name entries."""
    fleet_file = REPO_ROOT / "fleet.yml"
    services = yaml.safe_load(fleet_file.read_text())["services"]
    assert isinstance(services, list)
    assert read_fleet_file(fleet_file) == [repository(entry, REPO_ROOT) for entry in services]


def browser() -> str:
    """Debian's chromium, or the Chrome that GitHub's Ubuntu runners ship."""
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    return require_tool("chromium", CHROMIUM_HINT)


def browser_dom(page: Path, fragment: str) -> str:
    chromium = browser()
    done = run(
        [
            chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
            "--no-first-run", "--dump-dom", f"{page.as_uri()}#{fragment}",
        ],
        timeout=120,
    )  # fmt: skip
    return done.stdout


def row_names(dom: str) -> list[str]:
    body = dom.split("<tbody>", 1)[1]
    return re.findall(r'<tr[^>]*><td data-sort="([^"]+)"', body)


def test_the_html_page_sorts_in_a_real_browser(
    fleet: Fleet, fleet_report: tuple[subprocess.CompletedProcess[str], Path]
) -> None:
    _, output = fleet_report
    page = output / "fleet.html"
    source = page.read_text()
    assert not re.search(r"<(script|link|img)[^>]+(src|href)=", source), "the page loads nothing"
    assert "http://" not in source
    behind = {name: want.behind for name, want in fleet.expected.items() if want.behind is not None}

    least_behind_first = row_names(browser_dom(page, "sort=behind"))
    assert sorted(least_behind_first) == sorted(fleet.expected)
    counts = [behind.get(name, -1) for name in least_behind_first]
    assert counts == sorted(counts)
    assert counts[-1] == 2

    reverse_names = browser_dom(page, "sort=-service")
    assert row_names(reverse_names) == sorted(fleet.expected, reverse=True)
    assert re.search(r'<th data-key="service"[^>]* aria-sort="descending"', reverse_names)


def test_the_html_page_draws_a_bar_per_service(
    fleet_report: tuple[subprocess.CompletedProcess[str], Path],
) -> None:
    _, output = fleet_report
    source = (output / "fleet.html").read_text()
    widths = dict(
        re.findall(r'<td data-sort="([^"]+)">.*?<span class="bar" style="width:([\d.]+)em"', source)
    )
    assert widths["acme/s01"] == "6.0"
    assert widths["acme/s04"] == "3.0"
    assert widths["acme/s08"] == "0.0"
    assert (
        "22 services and 1 workspace root, 5 behind the template's newest release; "
        "3 repositories could not be read" in source
    )


def test_update_starts_the_workflow_of_each_lagging_service(fleet: Fleet) -> None:
    fleet.gh_calls.write_text("")
    done = run_fleet(fleet, "update", "--fleet", str(fleet.fleet_file))
    assert done.returncode == 0, done.stdout + done.stderr
    calls = [json.loads(line) for line in fleet.gh_calls.read_text().splitlines()]
    started = sorted(call[-1] for call in calls if call[:2] == ["workflow", "run"])
    assert started == [f"acme/s{number:02d}" for number in range(1, 6)]
    assert all(
        call[2] == "template-update.yml" for call in calls if call[:2] == ["workflow", "run"]
    )


def remote_answers(remote: Path, ref: str) -> dict[str, Any]:
    answers = yaml.safe_load(git("show", f"{ref}:.copier-answers.yml", cwd=remote))
    assert isinstance(answers, dict)
    return answers


def test_update_local_brings_clean_services_to_the_newest_release(fleet: Fleet) -> None:
    branch = f"template-update/{LATEST.removeprefix('v')}"
    done = run_fleet(fleet, "update", "--local", "--push", "--fleet", str(fleet.fleet_file))
    assert done.returncode == 0, done.stdout + done.stderr
    outcomes = dict(re.findall(r"^(acme/s\d\d): (\w+)", done.stdout, re.MULTILINE))
    lagging = [f"acme/s{number:02d}" for number in range(1, 6)]
    assert {name: outcomes.get(name) for name in lagging} == {
        name: "conflicted" if name == "acme/s03" else "clean" for name in lagging
    }, done.stdout
    assert re.search(r"^acme/s03: conflicted -> \S+ \(\.gitignore\); ", done.stdout, re.MULTILINE)
    for name in lagging:
        remote = fleet.remotes[name]
        assert remote_answers(remote, branch)["_commit"] == LATEST, name
        assert remote_answers(remote, "main")["_commit"] != LATEST, "main is left to review"
        updated = git("show", f"{branch}:docs/operations.md", cwd=remote)
        assert updated == "# Operating orders\n"
    for name, lines in fleet.team_lines.items():
        for path, line in [("Dockerfile", TEAM_DOCKERFILE), (".gitignore", TEAM_GITIGNORE)]:
            if line in lines:
                assert line in git("show", f"{branch}:{path}", cwd=fleet.remotes[name]), name


def test_update_local_pushes_nothing_unless_asked(fleet: Fleet, tmp_path: Path) -> None:
    """Without --push, each line names the releases and the files changed, and where the updated
    clone is; a committed *.rej is left to resolve, as committed conflict markers are."""
    with_rej = tmp_path / "with-rej"
    git("clone", "--quiet", str(fleet.remotes["acme/s04"]), str(with_rej), cwd=tmp_path)
    (with_rej / "Dockerfile.rej").write_text("@@ a hunk an earlier update could not apply\n")
    commit_all(with_rej, "An update's leftover, committed by mistake")
    remote = fleet.remotes["acme/s04"]
    fleet_file = tmp_path / "fleet.yml"
    fleet_file.write_text("services: [acme/s04, acme/s08, with-rej]\n")
    before = git("for-each-ref", cwd=remote)
    kept = tmp_path / "kept"
    done = run_fleet(
        fleet, "update", "--local", "--only", "acme/s04", "with-rej",
        "--fleet", str(fleet_file), "--output", str(kept),
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    line = re.search(r"^acme/s04: clean; (v[\d.]+) to (v[\d.]+), (\d+) files changed: (.*)$",
                     done.stdout, re.MULTILINE)  # fmt: skip
    assert line, done.stdout
    assert line[2] == LATEST
    assert ".copier-answers.yml" in line[4]
    assert line[4].endswith(
        f"; not pushed: the result is in {kept / 'acme-s04'} (git status there)"
    )
    changed = git("status", "--porcelain", "--untracked-files=all", cwd=kept / "acme-s04")
    assert len(changed.splitlines()) == int(line[3])
    assert remote_answers(kept / "acme-s04", "HEAD")["_commit"] == line[1]
    assert yaml.safe_load((kept / "acme-s04/.copier-answers.yml").read_text())["_commit"] == LATEST
    assert re.search(r"^with-rej: conflicted \(Dockerfile\.rej\); ", done.stdout, re.MULTILINE)
    assert "acme/s08" not in done.stdout, "--only leaves the others alone"
    assert git("for-each-ref", cwd=remote) == before

    unknown = run_fleet(fleet, "update", "--only", "acme/nope", "--fleet", str(fleet_file))
    assert unknown.returncode == 2
    assert "--only names no service of the fleet: acme/nope" in unknown.stdout


RENOVATE_RELEASE = "v1.1.0"


def test_renovate_s_copier_manager_updates_a_service_across_a_release(
    fleet: Fleet, tmp_path: Path
) -> None:
    """Renovate's copier manager runs exactly this command line from the service's root, with the
    release's tag (its git-tags lookup of `_src_path`) as --vcs-ref."""
    service = tmp_path / "service"
    git("clone", "--quiet", str(fleet.remotes["acme/s01"]), str(service), cwd=tmp_path)
    team = TeamWork(service)
    team.append("Dockerfile", "# Renovate's update keeps this line.\n")
    team.append("src/orders/api.py", "# The team's endpoints grow here.\n")
    team.create("docs/decisions.md", "# Decisions\n\nWe chose Renovate for updates.\n")
    git("config", "user.name", "Team", cwd=service)
    git("config", "user.email", "team@example.com", cwd=service)
    team.commit()

    copier = dev_tool("copier")
    run(
        [
            copier, "update", "--skip-answered", "--defaults", "--trust",
            "--answers-file", ".copier-answers.yml", "--vcs-ref", RENOVATE_RELEASE,
        ],
        cwd=service,
        env=fleet.env,
    )  # fmt: skip

    answers = yaml.safe_load((service / ".copier-answers.yml").read_text())
    assert answers["_commit"] == RENOVATE_RELEASE
    assert answers["_src_path"] == str(fleet.template)
    assert (service / ".gitignore").read_text().splitlines()[0] == TEMPLATE_GITIGNORE
    assert team.missing() == []
    changed = git("status", "--porcelain", cwd=service)
    assert " M .copier-answers.yml" in changed.splitlines(), "Renovate's sign of an update"
    assert not [line for line in changed.splitlines() if line.startswith(("UU", "AA"))]


@pytest.mark.parametrize(
    ("recorded", "url"),
    [
        ("gh:acme/service-template", "https://github.com/acme/service-template.git"),
        ("gl:acme/service-template.git", "https://gitlab.com/acme/service-template.git"),
    ],
)
def test_a_template_shorthand_gets_a_note_with_the_url_renovate_needs(
    recorded: str, url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    post_copy.warn_about_template_shorthand({"_src_path": recorded})
    note = capsys.readouterr().err
    assert f"`_src_path: {url}`" in note
    assert "Renovate" in note
    post_copy.warn_about_template_shorthand({"_src_path": url})
    assert capsys.readouterr().err == ""


PROJECT_PAGE = """<!DOCTYPE html><html><body>
<a href="smplkit_core-1.2.0-py3-none-any.whl#sha256=00">smplkit_core-1.2.0-py3-none-any.whl</a>
<a href="../../files/smplkit_core-1.3.0.tar.gz">smplkit_core-1.3.0.tar.gz</a>
<a href="smplkit_core-1.4.0rc1-py3-none-any.whl">smplkit_core-1.4.0rc1-py3-none-any.whl</a>
<a href="smplkit_core-2.0.0-py3-none-any.whl">smplkit_core-2.0.0-py3-none-any.whl</a>
<a href="other_package-9.0.0-py3-none-any.whl">other_package-9.0.0-py3-none-any.whl</a>
</body></html>"""


class FakeResponse:
    def __init__(self, body: str) -> None:
        self.body = body.encode()

    def __enter__(self) -> FakeResponse:
        return self

    def __exit__(self, *_: object) -> None:
        return None

    def read(self) -> bytes:
        return self.body


def test_the_newest_core_on_an_https_index_is_asked_with_uv_s_credentials(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The newest final release within the range: not a pre-release, not the next major."""
    asked: list[tuple[urllib.request.Request, float]] = []

    def urlopen(request: urllib.request.Request, timeout: float) -> FakeResponse:
        asked.append((request, timeout))
        return FakeResponse(PROJECT_PAGE)

    monkeypatch.setattr("urllib.request.urlopen", urlopen)
    monkeypatch.setenv("UV_INDEX_PRIVATE_USERNAME", "aws")
    monkeypatch.setenv("UV_INDEX_PRIVATE_PASSWORD", "token-from-codeartifact")
    url = "https://smplkit-123456789012.d.codeartifact.us-east-1.amazonaws.com/pypi/python/simple/"
    newest = index.newest_allowed(url, "smplkit_core", ">=1.0,<2", "private")
    assert str(newest) == "1.3.0"
    ((request, timeout),) = asked
    assert timeout == simple_index.TIMEOUT_SECONDS
    assert request.full_url == url + "smplkit-core/"
    expected = base64.b64encode(b"aws:token-from-codeartifact").decode()
    assert request.get_header("Authorization") == f"Basic {expected}"
    assert index.newest_allowed(url, "smplkit-core", ">=3", "private") is None


def test_an_index_other_than_https_or_file_is_refused() -> None:
    with pytest.raises(simple_index.IndexUnreadableError, match="only https:// and file://"):
        index.newest_allowed("http://mirror.example/simple/", "smplkit-core", ">=1", None)


def test_an_index_that_never_saw_the_package_is_unreadable(tmp_path: Path) -> None:
    """The service's lock came from its index: one without the package is the wrong index."""
    with pytest.raises(simple_index.IndexUnreadableError, match="no smplkit-core on this index"):
        index.newest_allowed(str(tmp_path), "smplkit-core", ">=1", None)


def test_the_repository_builds_the_fleet_command(tmp_path: Path) -> None:
    """What `uvx --from <template repository> fleet` installs: the fleet package, its page, and
    the `fleet` command."""
    run([dev_tool("uv"), "build", "--wheel", "--out-dir", str(tmp_path), "."], cwd=REPO_ROOT)
    (wheel,) = tmp_path.glob("*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        entry_points = next(name for name in names if name.endswith("entry_points.txt"))
        scripts = archive.read(entry_points).decode()
    assert {"fleet/cli.py", "fleet/page.html"} <= set(names)
    assert not [name for name in names if name.split("/")[0] in {"tests", "harness", "core"}]
    assert "fleet = fleet.cli:main" in scripts


def test_the_fleet_can_be_an_organisation_s_repositories_with_a_topic(
    fleet: Fleet, tmp_path: Path
) -> None:
    done = run_fleet(fleet, "report", "--org", "acme", "--topic", TOPIC, "--output", str(tmp_path))
    assert done.returncode == 0, done.stdout + done.stderr
    lines = report_lines(tmp_path)
    assert sorted(lines) == sorted(TOPIC_REPOSITORIES)
    assert [(lines[name]["version"], lines[name]["python"]) for name in sorted(lines)] == [
        ("v1.1.0", "3.11"),
        ("v1.2.0", "3.13"),
    ]
    alone = run_fleet(fleet, "report", "--topic", TOPIC, "--output", str(tmp_path))
    assert alone.returncode == 2
    assert "--topic and --org go together" in alone.stdout
