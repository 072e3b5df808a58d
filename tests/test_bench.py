"""The bench runs to the end on any machine, and its report judges every figure against its goal.

Only the bench's own machinery is tested here, cheaply: no service is generated and nothing is
timed. Counting with callgrind needs valgrind (Debian: apt-get install valgrind).
"""

from __future__ import annotations

import asyncio
import json
import shutil
import sys
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from bench import asgi_driver, bare_app, counters, handwritten_app
from bench.__main__ import run_sections
from bench.load import httperf_p99_ms
from bench.stats import Figure, NotMeasuredError, Report, Target, render_markdown
from bench.workspace import Options, Workspace


def test_callgrind_counts_a_commands_instructions_its_children_included(tmp_path: Path) -> None:
    if shutil.which("valgrind") is None:
        pytest.fail("valgrind is needed to count instructions: apt-get install valgrind")
    (alone,) = counters.callgrind_totals(["true"], cwd=tmp_path, env={})
    # The shell's children are counted too: copier's git runs are its cost.
    with_children = counters.callgrind_totals(["sh", "-c", "true; true"], cwd=tmp_path, env={})
    assert 0 < alone < sum(with_children)


def test_callgrind_counts_each_phase_of_a_process_apart(tmp_path: Path) -> None:
    if shutil.which("valgrind") is None:
        pytest.fail("valgrind is needed to count instructions: apt-get install valgrind")
    phases = (
        "import os\nfor n in (1, 2):\n    os.getppid()\n    sum(range(n * 10**5))\nos.getppid()"
    )
    command = [sys.executable, "-c", phases]
    segments = counters.callgrind_totals(command, cwd=tmp_path, env={}, dump_before="getppid")
    start_up, once, twice, _exit = segments
    assert start_up > 0
    assert twice > once > 0
    assert 1.9 < twice / once < 2.1


def test_the_asgi_driver_sends_each_endpoint_in_process(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """bare_app, as core-costs drives it: each endpoint answered, a refusal never counted."""
    widget = {"type": "widgets", "id": "w-1", "attributes": {"name": "widget 00"}}
    payloads = {"one": {"data": widget}, "page": {"data": [widget]}, "created": {"data": widget}}
    (tmp_path / "payloads.json").write_text(json.dumps({**payloads, "collection": "/v1/widgets"}))
    monkeypatch.setenv(bare_app.PAYLOADS_VARIABLE, str(tmp_path / "payloads.json"))
    monkeypatch.syspath_prepend(str(Path(bare_app.__file__).parent))
    setup = {"collection": "/v1/widgets", "page": "?page%5Bsize%5D=50", "body": {"data": {}}}
    setup |= {"reader": "r", "writer": "w", "record": ""}
    answers = asyncio.run(asgi_driver.drive("bare_app:create_app", 3, setup))
    assert answers == {**payloads, "collection": "/v1/widgets"}
    with pytest.raises(RuntimeError, match="answered"):
        asyncio.run(asgi_driver.drive("bare_app:create_app", 3, {**setup, "collection": "/v2"}))


def test_without_valgrind_a_count_is_not_measured(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(shutil, "which", lambda _name: None)
    with pytest.raises(NotMeasuredError, match="apt-get install valgrind"):
        counters.callgrind_totals(["true"], cwd=tmp_path, env={})


def figure(name: str, value: float, baseline: float, target: Target | None = None) -> Figure:
    return Report().add(
        "test", name, "s", [value], [baseline], baseline_name="floor", target=target
    )


def test_a_failing_section_does_not_stop_the_others(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(shutil, "which", lambda _name: None)

    def counts(workspace: Workspace, _report: Report) -> None:
        counters.callgrind_totals(["true"], cwd=workspace.root, env={})

    def broken(_workspace: Workspace, _report: Report) -> None:
        raise RuntimeError("the template does not render")

    def fine(_workspace: Workspace, report: Report) -> None:
        report.figures.append(figure("fine", 1.0, 1.0))

    options = Options(1, 0, 1, 1, "none", keep=False)
    report = Report()
    sections = {"counts": counts, "broken": broken, "fine": fine}
    run_sections(sections, Workspace(tmp_path, options), report)

    assert [figure.name for figure in report.figures] == ["fine"]
    assert len(report.not_measured) == 1
    assert report.not_measured[0].startswith("counts: no instruction counter here")
    assert report.errors == ["broken: RuntimeError: the template does not render"]
    text = render_markdown(report)
    assert "Not measured here (a tool is missing; the run goes on)" in text
    assert "the template does not render" in text


def test_the_summary_puts_each_ratio_beside_its_goal() -> None:
    report = Report()
    report.figures += [
        figure("copy", 2.0, 1.0, Target("<=", 3.0, on="ratio")),
        figure("update", 6.0, 1.0, Target("<=", 5.0, on="ratio")),
        figure("GET", 0.85, 1.0, Target(">=", 0.70, on="ratio", stretch=0.80)),
        figure("untargeted", 9.0, 1.0),
    ]
    budgets = render_markdown(report).split("## Budgets")[1].splitlines()
    rows = [[cell.strip() for cell in line.strip("|").split("|")] for line in budgets]
    copy, update, get = (row for row in rows if row[0].startswith("test: "))
    # the figure without a goal is not in the summary; each row: figure, measured, goal, verdict
    assert copy == ["test: copy", "2.00 x", "ratio <= 3.00 x", "ok"]
    assert update == ["test: update", "6.00 x", "ratio <= 5.00 x", "MISSED"]
    assert get == [
        "test: GET",
        "0.850 x",
        "ratio >= 0.700 x, stretch >= 0.800 x",
        "ok, stretch met",
    ]


def test_the_core_meets_its_budget_within_three_points_of_the_floor() -> None:
    floor = 0.80
    target = Target(">=", 0.90, on="ratio", alternative=floor - 0.03)
    assert figure("core", 0.78, 1.0, target).verdict() == "ok"
    assert figure("core", 0.76, 1.0, target).verdict() == "MISSED"
    assert figure("core", 0.91, 1.0, target).verdict() == "ok"


HTTPERF = """\
Connection lifetime histogram (time in ms):
             0.5 {fast}
             1.5 5
             :
            40.5 {slow}

Reply status: 1xx=0 2xx=100 3xx=0 4xx=0 5xx=0
Errors: total {errors} client-timo {timeouts} socket-timo 0 connrefused 0 connreset 0
Errors: fd-unavail {fd_unavail} addrunavail 0 ftab-full 0 other 0
"""


def httperf(fast: int, slow: int, timeouts: int = 0, fd_unavail: int = 0) -> str:
    errors = timeouts + fd_unavail
    return HTTPERF.format(
        fast=fast, slow=slow, errors=errors, timeouts=timeouts, fd_unavail=fd_unavail
    )


def test_the_fixed_rate_p99_is_read_from_httperfs_histogram() -> None:
    assert httperf_p99_ms(httperf(fast=94, slow=1)) == 2.0
    assert httperf_p99_ms(httperf(fast=90, slow=5)) == 41.0  # the pause shows
    # a request that timed out is slower than any answered: one in 100 lies beyond the p99
    assert httperf_p99_ms(httperf(fast=94, slow=0, timeouts=1)) == 2.0


def test_a_fixed_rate_httperf_did_not_hold_is_not_measured() -> None:
    with pytest.raises(NotMeasuredError, match="fd-unavail 3"):
        httperf_p99_ms(httperf(fast=94, slow=1, fd_unavail=3))
    with pytest.raises(NotMeasuredError, match="2 of 100 requests timed out"):
        httperf_p99_ms(httperf(fast=93, slow=0, timeouts=2))
    with pytest.raises(RuntimeError, match="other than 2xx"):
        httperf_p99_ms(httperf(fast=94, slow=1).replace("4xx=0", "4xx=1"))


def test_the_hand_written_app_keeps_each_callers_widgets_apart(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """B's page stays the seeded widgets however many another caller creates, as the service's
    reader account does while the load POSTs as another account (else B's page sorts them all)."""
    times = {"created_at": "2026-01-01T00:00:00Z", "updated_at": "2026-01-01T00:00:00Z"}
    seeded = {"id": "seeded", "attributes": {"name": "a", "description": None, **times}}
    payloads = tmp_path / "payloads.json"
    payloads.write_text(json.dumps({"page": {"data": [seeded]}}))
    monkeypatch.setenv(handwritten_app.PAYLOADS_VARIABLE, str(payloads))
    client = TestClient(handwritten_app.create_app())
    reader, writer = {"Authorization": "Bearer reader"}, {"Authorization": "Bearer writer"}
    new = {"data": {"type": "widgets", "attributes": {"name": "new"}}}
    assert client.post("/v1/widgets", json=new, headers=writer).status_code == 201
    page = client.get("/v1/widgets", headers=reader).json()
    assert [widget["id"] for widget in page["data"]] == ["seeded"]
    assert client.get("/v1/widgets", headers=writer).json()["meta"]["total"] == 2
