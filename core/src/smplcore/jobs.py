"""Scheduled jobs: one run of one job, as the ECS task EventBridge Scheduler starts runs it.

The service writes the job, ``async def nightly_report(run: JobRun) -> None``; :func:`run_job`
runs it once and returns the process's exit status: 0 when it returned, 1 when it raised (ECS
records the task as failed, and the service's Slack channel is told), 143 when SIGTERM or SIGINT
stopped it (ECS stops a task with SIGTERM). Every run writes one log line (``smplcore.jobs``):
the job, its run id, duration and outcome, with the error (its class, and its code for the core's
errors) when it raised. While tracing is on (:mod:`smplcore.telemetry`), a run is a span, ``job
<name>``, the root of its own trace (sampled at the service's ratio): the job's log lines and the
run's line carry its ids.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import time
import uuid
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

from smplcore.errors import SmplkitError
from smplcore.telemetry import span

__all__ = ["EXIT_FAILED", "EXIT_INTERRUPTED", "EXIT_OK", "Job", "JobRun", "run_job"]

logger = logging.getLogger("smplcore.jobs")

EXIT_OK: Final = 0
EXIT_FAILED: Final = 1
EXIT_INTERRUPTED: Final = 128 + signal.SIGTERM
"""A shell's status for a process ended by SIGTERM."""


@dataclass(frozen=True, slots=True)
class JobRun:
    """One run of a job, as the job sees it."""

    job: str
    run_id: str
    """Unique to this run, and on its log line: a job can tag what it writes with it."""
    started_at: datetime


Job = Callable[[JobRun], Coroutine[Any, Any, None]]
"""What the service writes: one run of the job; it raises when the run failed."""


async def run_job(name: str, job: Job, *, run_id: str | None = None) -> int:
    """Run ``job`` once, until it returns, raises, or SIGTERM/SIGINT cancels it; return the exit
    status (:data:`EXIT_OK`, :data:`EXIT_FAILED` or :data:`EXIT_INTERRUPTED`)."""
    run = JobRun(job=name, run_id=run_id or uuid.uuid4().hex, started_at=datetime.now(UTC))
    with span(f"job {name}", attributes={"job.name": name, "job.run_id": run.run_id}) as traced:
        started = time.perf_counter()
        running = asyncio.create_task(job(run))
        loop = asyncio.get_running_loop()
        signals = (signal.SIGTERM, signal.SIGINT)
        for number in signals:
            loop.add_signal_handler(number, running.cancel)
        try:
            await asyncio.wait({running})
        finally:
            for number in signals:
                loop.remove_signal_handler(number)
        fields: dict[str, Any] = {"job": name, "run_id": run.run_id}
        if running.cancelled():
            status, level, outcome, error = EXIT_INTERRUPTED, logging.WARNING, "interrupted", None
            traced.fail(outcome)
        elif (error := running.exception()) is not None:
            status, level, outcome = EXIT_FAILED, logging.ERROR, "failed"
            fields["error"] = type(error).__name__
            if isinstance(error, SmplkitError):
                fields["error_code"] = error.code
            traced.set_attribute("error.type", fields["error"])
            traced.fail(fields["error"])
        else:
            status, level, outcome = EXIT_OK, logging.INFO, "succeeded"
        fields["duration_ms"] = round((time.perf_counter() - started) * 1000, 3)
        fields["outcome"] = outcome
        fields["exit_status"] = status
        exc_info = (type(error), error, error.__traceback__) if error is not None else None
        logger.log(level, "job run", extra=fields, exc_info=exc_info)
    return status
