"""Figures (median, min, max beside a baseline), rendered as a text table, Markdown and JSON.

A single number from one run says little on a shared two-core machine, so every figure keeps all
its samples and is shown as its median with the min-max range, next to the baseline measured in
the same run and the ratio of the two.
"""

from __future__ import annotations

import json
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal


@dataclass(frozen=True)
class Summary:
    """Median, min and max of repeated measurements, with the raw samples kept for the JSON."""

    median: float
    minimum: float
    maximum: float
    samples: tuple[float, ...]

    @classmethod
    def of(cls, samples: Sequence[float]) -> Summary:
        if not samples:
            raise ValueError("a summary needs at least one sample")
        return cls(statistics.median(samples), min(samples), max(samples), tuple(samples))

    def scaled(self, factor: float) -> Summary:
        """The same figure in another unit (seconds to milliseconds, bytes to MiB...)."""
        return Summary.of([sample * factor for sample in self.samples])


class NotMeasuredError(RuntimeError):
    """A figure needs a tool this machine lacks (an instruction counter): the section is reported
    as not measured, and the run still succeeds."""


@dataclass(frozen=True)
class Target:
    """A budget from DESIGN.md: `value <= limit` or `value >= limit`, on the figure or its ratio.

    `alternative`, when given, is a second limit that also meets the budget (the core's: 0.90 of
    bare FastAPI, or within 3 points of the minimal layer), described by `alternative_text`.
    `stretch` is a better limit the figure aims at, beyond the budget.
    """

    operator: Literal["<=", ">="]
    limit: float
    on: Literal["value", "ratio"] = "value"
    alternative: float | None = None
    alternative_text: str = ""
    stretch: float | None = None

    def met_by(self, number: float) -> bool:
        limits = [self.limit] if self.alternative is None else [self.limit, self.alternative]
        return any(self._within(number, limit) for limit in limits)

    def stretch_met_by(self, number: float) -> bool:
        return self.stretch is not None and self._within(number, self.stretch)

    def _within(self, number: float, limit: float) -> bool:
        return number <= limit if self.operator == "<=" else number >= limit


@dataclass
class Figure:
    """One row of the results table."""

    section: str
    name: str
    unit: str
    value: Summary
    baseline_name: str | None = None
    baseline: Summary | None = None
    target: Target | None = None
    ratio: Summary | None = None
    """Paired per-round ratios when the rounds alternate (load); else value/baseline medians."""
    note: str = ""

    def ratio_median(self) -> float | None:
        if self.ratio is not None:
            return self.ratio.median
        if self.baseline is not None and self.baseline.median > 0:
            return self.value.median / self.baseline.median
        return None

    def judged(self) -> float | None:
        """The number the target is about: the median of the figure or of its ratio."""
        if self.target is None:
            return None
        return self.value.median if self.target.on == "value" else self.ratio_median()

    def verdict(self) -> str:
        """`ok` (`ok, stretch met`) or `MISSED` against the target (on the median), `-` when the
        row has no target."""
        number = self.judged()
        if self.target is None or number is None:
            return "-"
        if not self.target.met_by(number):
            return "MISSED"
        return "ok, stretch met" if self.target.stretch_met_by(number) else "ok"

    def missed(self) -> bool:
        return self.verdict() == "MISSED"


@dataclass
class Report:
    """Everything one `python -m bench` run measured, plus what it could not measure and why."""

    figures: list[Figure] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    not_measured: list[str] = field(default_factory=list)
    """Sections or figures this machine lacks a tool for: listed, not failed."""
    notes: dict[str, list[str]] = field(default_factory=dict)
    """Section title -> lines (profiles, breakdowns): the 'where the time goes' of the report."""
    environment: dict[str, str] = field(default_factory=dict)
    started: float = field(default_factory=time.time)

    def add_note(self, title: str, lines: Sequence[str]) -> None:
        self.notes.setdefault(title, []).extend(lines)


def format_number(number: float) -> str:
    """Three significant figures at most, without exponent notation for the sizes seen here."""
    if number == 0:
        return "0"
    digits = 3 - len(str(int(abs(number)))) if abs(number) >= 1 else 3
    return f"{number:,.{max(digits, 0)}f}"


def format_summary(summary: Summary | None, unit: str = "") -> str:
    if summary is None:
        return "-"
    suffix = f" {unit}" if unit else ""
    if len(summary.samples) == 1:
        return f"{format_number(summary.median)}{suffix}"
    low, high = format_number(summary.minimum), format_number(summary.maximum)
    return f"{format_number(summary.median)}{suffix} ({low}-{high})"


def format_target(target: Target | None, unit: str) -> str:
    if target is None:
        return "-"
    subject = "ratio " if target.on == "ratio" else ""
    suffix = " x" if target.on == "ratio" else f" {unit}"
    text = f"{subject}{target.operator} {format_number(target.limit)}{suffix}"
    if target.alternative is not None:
        text += f" or {target.operator} {format_number(target.alternative)}{suffix}"
        text += f" ({target.alternative_text})" if target.alternative_text else ""
    if target.stretch is not None:
        text += f", stretch {target.operator} {format_number(target.stretch)}{suffix}"
    return text


def format_ratio(figure: Figure) -> str:
    if figure.ratio is not None:
        return format_summary(figure.ratio, "x")
    ratio = figure.ratio_median()
    return "-" if ratio is None else f"{format_number(ratio)} x"


COLUMNS = (
    "figure",
    "median (min-max)",
    "baseline",
    "baseline median (min-max)",
    "ratio",
    "target",
    "",
)


def rows(report: Report) -> list[tuple[str, ...]]:
    return [
        (
            f"{figure.section}: {figure.name}" + (f" [{figure.note}]" if figure.note else ""),
            format_summary(figure.value, figure.unit),
            figure.baseline_name or "-",
            format_summary(figure.baseline, figure.unit),
            format_ratio(figure),
            format_target(figure.target, figure.unit),
            figure.verdict(),
        )
        for figure in report.figures
    ]


BUDGET_COLUMNS = ("budget figure", "measured", "goal", "")


def budget_rows(report: Report) -> list[tuple[str, str, str, str]]:
    """Every figure with a target: the number judged (median, or median ratio), the goal, the
    verdict. The summary read at the end of a run."""
    out = []
    for figure in report.figures:
        number = figure.judged()
        if figure.target is None or number is None:
            continue
        on_ratio = figure.target.on == "ratio"
        measured = (
            f"{format_number(number)} x" if on_ratio else f"{format_number(number)} {figure.unit}"
        )
        goal = format_target(figure.target, figure.unit)
        out.append((f"{figure.section}: {figure.name}", measured, goal, figure.verdict()))
    return out


def _fixed_width(table: Sequence[Sequence[str]]) -> list[str]:
    widths = [max(len(row[index]) for row in table) for index in range(len(table[0]))]

    def line(row: Sequence[str]) -> str:
        return "  ".join(
            cell.ljust(width) for cell, width in zip(row, widths, strict=True)
        ).rstrip()

    return [line(table[0]), "  ".join("-" * width for width in widths)] + [
        line(row) for row in table[1:]
    ]


def render_text(report: Report) -> str:
    """A fixed-width table for the terminal, then errors and notes, then the budgets."""
    out = _fixed_width([COLUMNS, *rows(report)])
    out += _trailer(report, lambda title: f"\n{title}", lambda text: f"  {text}")
    budgets = budget_rows(report)
    if budgets:
        out += ["", "Budgets (DESIGN.md and the issues): each figure beside its goal"]
        out += _fixed_width([BUDGET_COLUMNS, *budgets])
    return "\n".join(out) + "\n"


def _markdown_table(header: Sequence[str], body: Sequence[Sequence[str]]) -> list[str]:
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return out + [
        "| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in body
    ]


def render_markdown(report: Report) -> str:
    """The same tables as Markdown, with the environment the figures were measured in."""
    out = ["# Benchmarks", ""]
    out += [f"- {key}: {value}" for key, value in report.environment.items()]
    out += ["", *_markdown_table((*COLUMNS[:-1], "verdict"), rows(report))]
    out += _trailer(report, lambda title: f"\n## {title}\n", lambda text: f"    {text}")
    budgets = budget_rows(report)
    if budgets:
        out += ["", "## Budgets", ""]
        out += _markdown_table((*BUDGET_COLUMNS[:-1], "verdict"), budgets)
    return "\n".join(out) + "\n"


def _trailer(
    report: Report, heading: Callable[[str], str], item: Callable[[str], str]
) -> list[str]:
    out: list[str] = []
    for title, lines in (
        ("Not measured (errors)", report.errors),
        ("Not measured here (a tool is missing; the run goes on)", report.not_measured),
    ):
        if lines:
            out.append(heading(title))
            out += [item(text) for entry in lines for text in entry.splitlines()]
    for title, lines in report.notes.items():
        out.append(heading(title))
        out += [item(text) for text in lines]
    return out


def render_json(report: Report) -> str:
    document: dict[str, Any] = {
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(report.started)),
        "environment": report.environment,
        "figures": [
            {**asdict(figure), "ratio_median": figure.ratio_median(), "verdict": figure.verdict()}
            for figure in report.figures
        ],
        "budgets": [
            dict(zip(("figure", "measured", "goal", "verdict"), row, strict=True))
            for row in budget_rows(report)
        ],
        "errors": report.errors,
        "not_measured": report.not_measured,
        "notes": report.notes,
    }
    return json.dumps(document, indent=2) + "\n"
