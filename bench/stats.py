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


@dataclass(frozen=True)
class Target:
    """A budget from DESIGN.md: `value <= limit` or `value >= limit`, on the figure or its ratio."""

    operator: Literal["<=", ">="]
    limit: float
    on: Literal["value", "ratio"] = "value"

    def met_by(self, number: float) -> bool:
        return number <= self.limit if self.operator == "<=" else number >= self.limit


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

    def verdict(self) -> str:
        """`ok` or `MISSED` against the target (on the median), `-` when the row has no target."""
        if self.target is None:
            return "-"
        number = self.value.median if self.target.on == "value" else self.ratio_median()
        if number is None:
            return "-"
        return "ok" if self.target.met_by(number) else "MISSED"


@dataclass
class Report:
    """Everything one `python -m bench` run measured, plus what it could not measure and why."""

    figures: list[Figure] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
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
    suffix = "" if target.on == "ratio" else f" {unit}"
    return f"{subject}{target.operator} {format_number(target.limit)}{suffix}"


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


def render_text(report: Report) -> str:
    """A fixed-width table for the terminal, then errors and notes."""
    table = [COLUMNS, *rows(report)]
    widths = [max(len(row[index]) for row in table) for index in range(len(COLUMNS))]

    def line(row: Sequence[str]) -> str:
        return "  ".join(
            cell.ljust(width) for cell, width in zip(row, widths, strict=True)
        ).rstrip()

    out = [line(COLUMNS), "  ".join("-" * width for width in widths)]
    out += [line(row) for row in table[1:]]
    out += _trailer(report, lambda title: f"\n{title}", lambda text: f"  {text}")
    return "\n".join(out) + "\n"


def render_markdown(report: Report) -> str:
    """The same table as Markdown, with the environment the figures were measured in."""
    out = ["# Benchmarks", ""]
    out += [f"- {key}: {value}" for key, value in report.environment.items()]
    out += ["", "| " + " | ".join((*COLUMNS[:-1], "verdict")) + " |"]
    out += ["|" + "---|" * len(COLUMNS)]
    out += [
        "| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in rows(report)
    ]
    out += _trailer(report, lambda title: f"\n## {title}\n", lambda text: f"    {text}")
    return "\n".join(out) + "\n"


def _trailer(
    report: Report, heading: Callable[[str], str], item: Callable[[str], str]
) -> list[str]:
    out: list[str] = []
    if report.errors:
        out.append(heading("Not measured (errors)"))
        for error in report.errors:
            out += [item(text) for text in error.splitlines()]
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
        "errors": report.errors,
        "notes": report.notes,
    }
    return json.dumps(document, indent=2) + "\n"
