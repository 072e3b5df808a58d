"""Figures, rendered as Markdown and JSON.

A single number from one run says little on a shared two-core machine, so every figure keeps all
its samples and is shown as its median with the min-max range, next to the baseline measured in
the same run, in alternating rounds, and the median of the per-round ratios.
"""

from __future__ import annotations

import json
import statistics
import time
from collections.abc import Sequence
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
        return cls(statistics.median(samples), min(samples), max(samples), tuple(samples))

    def format(self, unit: str) -> str:
        text = f"{format_number(self.median)} {unit}"
        if len(self.samples) == 1:
            return text
        return f"{text} ({format_number(self.minimum)}-{format_number(self.maximum)})"


class NotMeasuredError(RuntimeError):
    """A figure needs a tool this machine lacks (an instruction counter): the section is reported
    as not measured, and the run still succeeds."""


@dataclass(frozen=True)
class Target:
    """A budget from DESIGN.md: `ratio <= limit` or `ratio >= limit` (or on the figure's value).

    `alternative`, when given, is a second limit that also meets the budget (the core's: 0.90 of
    bare FastAPI, or within 3 points of the minimal layer), described by `alternative_text`.
    `stretch` is a better limit the figure aims at, beyond the budget.
    """

    operator: Literal["<=", ">="]
    limit: float
    on: Literal["value", "ratio"] = "ratio"
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

    def format(self, unit: str) -> str:
        subject, suffix = ("ratio ", " x") if self.on == "ratio" else ("", f" {unit}")
        text = f"{subject}{self.operator} {format_number(self.limit)}{suffix}"
        if self.alternative is not None:
            text += f" or {self.operator} {format_number(self.alternative)}{suffix}"
            text += f" ({self.alternative_text})" if self.alternative_text else ""
        if self.stretch is not None:
            text += f", stretch {self.operator} {format_number(self.stretch)}{suffix}"
        return text


@dataclass
class Figure:
    """One row of the results table."""

    section: str
    name: str
    unit: str
    value: Summary
    baseline_name: str
    baseline: Summary
    ratio: Summary
    """The per-round ratios of value to baseline."""
    target: Target | None = None
    note: str = ""

    def judged(self) -> float:
        """The number a target is about: the median of the figure or of its ratio."""
        on_value = self.target is not None and self.target.on == "value"
        return self.value.median if on_value else self.ratio.median

    def verdict(self) -> str:
        """`ok` (`ok, stretch met`) or `MISSED` against the target, `-` without one."""
        if self.target is None:
            return "-"
        if not self.target.met_by(self.judged()):
            return "MISSED"
        return "ok, stretch met" if self.target.stretch_met_by(self.judged()) else "ok"

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
    """Title -> lines (profiles, breakdowns): the 'where the time goes' of the report."""
    environment: dict[str, str] = field(default_factory=dict)
    started: float = field(default_factory=time.time)

    def add(  # noqa: PLR0913 - a figure's fields, named at every call
        self,
        section: str,
        name: str,
        unit: str,
        ours: Sequence[float],
        base: Sequence[float],
        *,
        baseline_name: str,
        target: Target | None = None,
        note: str = "",
    ) -> Figure:
        """A figure beside its baseline, sample by sample (the ratio is the median of the pairs'),
        added to the report."""
        figure = Figure(
            section=section,
            name=name,
            unit=unit,
            value=Summary.of(ours),
            baseline_name=baseline_name,
            baseline=Summary.of(base),
            ratio=Summary.of([a / b for a, b in zip(ours, base, strict=True)]),
            target=target,
            note=note,
        )
        self.figures.append(figure)
        return figure

    def add_note(self, title: str, lines: Sequence[str]) -> None:
        self.notes.setdefault(title, []).extend(lines)


def format_number(number: float) -> str:
    """Three significant figures at most, without exponent notation for the sizes seen here."""
    if number == 0:
        return "0"
    digits = 3 - len(str(int(abs(number)))) if abs(number) >= 1 else 3
    return f"{number:,.{max(digits, 0)}f}"


def _table(header: Sequence[str], body: Sequence[Sequence[str]]) -> list[str]:
    """A Markdown table, its columns padded so that it reads in a terminal too."""
    rows = [[cell.replace("|", "\\|") for cell in row] for row in [header, *body]]
    widths = [max(len(row[index]) for row in rows) for index in range(len(header))]
    lines = [
        "| " + " | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) + " |"
        for row in rows
    ]
    return [lines[0], "|" + "|".join("-" * (width + 2) for width in widths) + "|", *lines[1:]]


def _rows(report: Report) -> list[tuple[str, ...]]:
    return [
        (
            f"{figure.section}: {figure.name}" + (f" [{figure.note}]" if figure.note else ""),
            figure.value.format(figure.unit),
            figure.baseline_name,
            figure.baseline.format(figure.unit),
            figure.ratio.format("x"),
            figure.target.format(figure.unit) if figure.target else "-",
            figure.verdict(),
        )
        for figure in report.figures
    ]


def budget_rows(report: Report) -> list[tuple[str, str, str, str]]:
    """Every figure with a target: the number judged (median, or median ratio), the goal, the
    verdict. The summary read at the end of a run."""
    rows = []
    for figure in report.figures:
        if figure.target is not None:
            unit = "x" if figure.target.on == "ratio" else figure.unit
            measured = f"{format_number(figure.judged())} {unit}"
            goal = figure.target.format(figure.unit)
            rows.append((f"{figure.section}: {figure.name}", measured, goal, figure.verdict()))
    return rows


def render_markdown(report: Report) -> str:
    """The figures, what was not measured, the notes, and the budgets at the end: printed at the
    end of a run and written to bench/results/."""
    out = ["# Benchmarks", ""]
    out += [f"- {key}: {value}" for key, value in report.environment.items()]
    header = ("figure", "median (min-max)", "baseline", "baseline median (min-max)", "ratio")
    out += ["", *_table((*header, "target", "verdict"), _rows(report))]
    for title, lines in (
        ("Not measured (errors)", report.errors),
        ("Not measured here (a tool is missing; the run goes on)", report.not_measured),
        *report.notes.items(),
    ):
        if lines:
            out += ["", f"## {title}", ""]
            out += [f"    {text}" for entry in lines for text in entry.splitlines()]
    budgets = budget_rows(report)
    if budgets:
        out += ["", "## Budgets (DESIGN.md): each figure beside its goal", ""]
        out += _table(("budget figure", "measured", "goal", "verdict"), budgets)
    return "\n".join(out) + "\n"


def render_json(report: Report) -> str:
    document: dict[str, Any] = {
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(report.started)),
        "environment": report.environment,
        "figures": [{**asdict(figure), "verdict": figure.verdict()} for figure in report.figures],
        "errors": report.errors,
        "not_measured": report.not_measured,
        "notes": report.notes,
    }
    return json.dumps(document, indent=2) + "\n"
