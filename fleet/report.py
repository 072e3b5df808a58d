"""The fleet report's forms: a terminal table, Markdown, JSON and one self-contained HTML page."""

from __future__ import annotations

import html
import json
from datetime import datetime
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from fleet.probe import Service

Columns = tuple[tuple[str, str], ...]
"""(key, heading) of each column, in order."""
COLUMNS: Columns = (
    ("service", "Service"),
    ("template", "Template"),
    ("behind", "Behind"),
    ("layout", "Layout"),
    ("database", "Database"),
    ("python", "Python"),
    ("core", "Core locked / newest"),
    ("libraries", "Libraries locked / newest"),
    ("pull_requests", "Update pull requests"),
    ("leftovers", "Leftover conflicts"),
)


def record(service: Service, now: datetime) -> dict[str, Any]:
    """The service as the JSON report holds it."""
    return {
        "service": service.name,
        "entity": service.entity,
        "repository": service.repository,
        "error": service.error,
        "template": service.template,
        "version": service.version,
        "latest": service.latest,
        "behind": service.behind,
        "layout": service.layout,
        "database": service.database,
        "python": service.python,
        "core": {
            "package": service.core_package,
            "range": service.core_range,
            "locked": service.core_locked,
            "newest": service.core_newest,
            "behind": service.core_behind,
            "note": service.core_note,
            "last_bump": service.last_core_bump,
        },
        "pull_requests": None
        if service.pull_requests is None
        else [
            {"branch": pr.branch, "url": pr.url, "opened": pr.opened, "age_days": pr.age_days(now)}
            for pr in service.pull_requests
        ],
        "leftovers": service.leftovers,
        "libraries": [
            {
                "name": library.name,
                "range": library.allowed,
                "locked": library.locked,
                "newest": library.newest,
                "behind": library.behind,
            }
            for library in service.libraries
        ],
    }


def cells(service: Service, now: datetime) -> dict[str, str]:
    """The service's line as text, column by column."""
    if service.error:
        return {"service": service.name, "template": f"error: {service.error}"}
    core = f"{service.core_locked or '?'} / {service.core_newest or '?'}"
    if service.core_behind:
        core += " (behind)"
    if service.core_note:
        core += f" ({service.core_note})"
    if service.pull_requests is None:
        pull_requests = "unknown"
    else:
        pull_requests = (
            ", ".join(f"{pr.branch} ({pr.age_days(now)} d)" for pr in service.pull_requests)
            or "none"
        )
    return {
        "service": service.name,
        "template": f"{service.version or '?'} (latest {service.latest or '?'})",
        "behind": "?" if service.behind is None else str(service.behind),
        "layout": service.layout or "",
        "database": service.database or "",
        "python": service.python or "",
        "core": core,
        "libraries": ", ".join(
            f"{library.name} {library.locked} / {library.newest or '?'}"
            + (" (behind)" if library.behind else "")
            for library in service.libraries
        )
        or "none",
        "pull_requests": pull_requests,
        "leftovers": ", ".join(service.leftovers) or "none",
    }


def rich_table(title: str, columns: Columns, lines: list[dict[str, str]], red: list[bool]) -> Table:
    """The lines as a terminal table, those marked red in red."""
    table = Table(title=title, show_lines=False)
    for _, heading in columns:
        table.add_column(heading, overflow="fold")
    for line, is_red in zip(lines, red, strict=True):
        table.add_row(*(line.get(key, "") for key, _ in columns), style="red" if is_red else None)
    return table


def markdown_table(columns: Columns, lines: list[dict[str, str]]) -> list[str]:
    """The lines as a Markdown table."""

    def escape(text: str) -> str:
        return text.replace("|", "\\|")

    return [
        "| " + " | ".join(heading for _, heading in columns) + " |",
        "|" + "---|" * len(columns),
        *(
            "| " + " | ".join(escape(line.get(key, "")) for key, _ in columns) + " |"
            for line in lines
        ),
    ]


def terminal(services: list[Service], now: datetime, console: Console) -> None:
    lines = [cells(service, now) for service in services]
    red = [bool(service.error or service.leftovers) for service in services]
    console.print(rich_table("Fleet", COLUMNS, lines, red))


def markdown(services: list[Service], now: datetime) -> str:
    lines = [
        "# Fleet report",
        "",
        f"{summary(services)}. {now:%Y-%m-%d %H:%M} UTC.",
        "",
        *markdown_table(COLUMNS, [cells(service, now) for service in services]),
    ]
    return "\n".join(lines) + "\n"


def as_json(services: list[Service], now: datetime) -> str:
    document = {"generated": now.isoformat(), "services": [record(s, now) for s in services]}
    return json.dumps(document, indent=2) + "\n"


FACT_RETRIEVER = {
    "id": "fleet",
    "version": "1.0.0",
    "entityFilter": [{"kind": "component"}],
    "schema": {
        "templateVersion": {"type": "string", "description": "Template release it is on"},
        "templateLatest": {"type": "string", "description": "The template's newest release"},
        "templateReleasesBehind": {"type": "integer", "description": "Releases it lags"},
        "coreLocked": {"type": "string", "description": "Core version its uv.lock holds"},
        "coreNewest": {"type": "string", "description": "Newest core its range allows"},
        "coreBehind": {"type": "boolean", "description": "Locked core older than the newest"},
        "openUpdatePullRequests": {"type": "integer", "description": "Open update PRs"},
        "oldestUpdatePullRequestDays": {"type": "integer", "description": "Oldest one's age"},
        "leftovers": {"type": "set", "description": "Files an update left to resolve"},
        "lastCoreBump": {"type": "datetime", "description": "Last core-bump PR merged"},
    },
}
"""What `fleet report` tells a portal about each service, in the shape of a Tech Insights fact
retriever (README: The fleet in a developer portal); a fact it cannot tell is null."""


def entities(services: list[Service]) -> tuple[dict[str, Service], list[Service]]:
    """The readable services by entity reference; those whose reference another service (listed
    first) already claims, which a portal cannot tell apart."""
    found: dict[str, Service] = {}
    shadowed = []
    for service in services:
        if service.error is None and service.entity is not None:
            if service.entity in found:
                shadowed.append(service)
            else:
                found[service.entity] = service
    return found, shadowed


def facts(service: Service, now: datetime) -> dict[str, Any]:
    pull_requests = service.pull_requests
    return {
        "templateVersion": service.version,
        "templateLatest": service.latest,
        "templateReleasesBehind": service.behind,
        "coreLocked": service.core_locked,
        "coreNewest": service.core_newest,
        "coreBehind": service.core_behind,
        "openUpdatePullRequests": None if pull_requests is None else len(pull_requests),
        "oldestUpdatePullRequestDays": None
        if pull_requests is None
        else max((pr.age_days(now) for pr in pull_requests), default=0),
        "leftovers": service.leftovers,
        "lastCoreBump": service.last_core_bump,
    }


def portal_facts(services: list[Service], now: datetime) -> str:
    """The facts file: one entry per entity reference, as catalog-info.yaml names the entity."""
    found, _ = entities(services)
    document = {
        "generated": now.isoformat(),
        "retriever": FACT_RETRIEVER,
        "entities": {
            reference: {"service": service.name, "facts": facts(service, now)}
            for reference, service in found.items()
        },
    }
    return json.dumps(document, indent=2) + "\n"


PAGE = (Path(__file__).parent / "page.html").read_text()
BAR_EM = 6
"""The bar of the services furthest behind, in em; the others' in proportion."""


def summary(services: list[Service]) -> str:
    unread = sum(1 for service in services if service.error)
    roots = sum(1 for service in services if service.workspace_root)
    lagging = sum(1 for service in services if service.behind)
    text = f"{len(services) - unread - roots} services"
    text += f" and {roots} workspace root{'s' if roots > 1 else ''}" if roots else ""
    text += f", {lagging} behind the template's newest release"
    return text + (f"; {unread} repositories could not be read" if unread else "")


def html_page(services: list[Service], now: datetime) -> str:
    """One page, no network: the data, style and script inline. The table sorts by a column when
    its heading is clicked, or as the URL fragment says (#sort=behind, #sort=-behind)."""
    most_behind = max((s.behind or 0 for s in services), default=0) or 1
    rows = []
    for service in services:
        line = cells(service, now)
        behind = service.behind or 0
        sort_behind = "-1" if service.behind is None else str(behind)
        bar = (
            f'<span class="bar" style="width:{BAR_EM * behind / most_behind:.1f}em"></span>'
            f'<span class="count">{html.escape(line.get("behind", ""))}</span>'
        )
        columns = []
        for key, _ in COLUMNS:
            text = html.escape(line.get(key, ""))
            if key == "behind":
                columns.append(
                    f'<td data-sort="{sort_behind}">{bar if not service.error else ""}</td>'
                )
            else:
                columns.append(f'<td data-sort="{text}">{text}</td>')
        state = "error" if service.error else "leftovers" if service.leftovers else ""
        rows.append(f'<tr class="{state}">' + "".join(columns) + "</tr>")
    headings = "".join(
        f'<th data-key="{key}" data-numeric="{"true" if key == "behind" else "false"}">'
        f"{html.escape(title)}</th>"
        for key, title in COLUMNS
    )
    return (
        PAGE.replace("{{generated}}", f"{now:%Y-%m-%d %H:%M} UTC")
        .replace("{{summary}}", summary(services))
        .replace("{{headings}}", headings)
        .replace("{{rows}}", "\n".join(rows))
    )
