"""The bench runs to the end on any machine, and its report judges every figure against its goal.

Only the bench's own machinery is tested here, cheaply: no service is generated and nothing is
timed. Counting with callgrind needs valgrind (Debian: apt-get install valgrind).
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from bench import counters
from bench.__main__ import run_sections
from bench.load import httperf_p99_ms
from bench.stats import Figure, NotMeasuredError, Report, Target, paired, render_markdown
from bench.workspace import Options, Workspace


@pytest.fixture(autouse=True)
def counter_cache() -> Iterator[None]:
    """Each test chooses its counter afresh, and leaves no choice behind for the others."""
    counters.instruction_counter.cache_clear()
    yield
    counters.instruction_counter.cache_clear()


def test_callgrind_counts_instructions_where_perf_does_not_work(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    if shutil.which("valgrind") is None:
        pytest.fail(
            "valgrind is needed to count instructions without perf: apt-get install valgrind"
        )
    monkeypatch.setattr(counters, "perf_works", lambda: False)
    assert counters.instruction_counter() == "callgrind"
    alone = counters.instructions_of(["true"], cwd=tmp_path, env={})
    # The shell's children are counted too, as perf counts them: copier's git runs are its cost.
    with_children = counters.instructions_of(["sh", "-c", "true; true"], cwd=tmp_path, env={})
    assert 0 < alone < with_children


def test_without_any_counter_a_count_is_not_measured(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(counters, "perf_works", lambda: False)
    monkeypatch.setattr(shutil, "which", lambda _name: None)
    assert counters.instruction_counter() is None
    with pytest.raises(NotMeasuredError, match="apt-get install valgrind"):
        counters.instructions_of(["true"], cwd=tmp_path, env={})


def figure(name: str, value: float, baseline: float, target: Target | None = None) -> Figure:
    return paired("test", name, "s", [value], [baseline], baseline_name="floor", target=target)


def test_a_failing_section_does_not_stop_the_others(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(counters, "instruction_counter", lambda: None)

    def counts(workspace: Workspace, _report: Report) -> None:
        counters.instructions_of(["true"], cwd=workspace.root, env={})

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
    assert report.not_measured[0].startswith("counts: no instruction counter works here")
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
Errors: total {errors} client-timo 0 socket-timo 0 connrefused 0 connreset 0
"""


def test_the_fixed_rate_p99_is_read_from_httperfs_histogram() -> None:
    assert httperf_p99_ms(HTTPERF.format(fast=94, slow=1, errors=0)) == 2.0
    assert httperf_p99_ms(HTTPERF.format(fast=90, slow=5, errors=0)) == 41.0  # the pause shows
    with pytest.raises(RuntimeError, match="errors"):
        httperf_p99_ms(HTTPERF.format(fast=94, slow=1, errors=3))
