"""A scheduled job's run: its exit status and its one log line."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal

import pytest

from smplcore import NotFoundError, configure_logging
from smplcore.jobs import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, JobRun, run_job
from smplcore.testing import OtlpReceiver


def run_line(caplog: pytest.LogCaptureFixture) -> logging.LogRecord:
    [line] = [r for r in caplog.records if r.name == "smplcore.jobs"]
    return line


def test_a_run_that_returns_exits_0_with_one_line(caplog: pytest.LogCaptureFixture) -> None:
    runs: list[JobRun] = []

    async def report(run: JobRun) -> None:
        runs.append(run)

    caplog.set_level(logging.INFO, "smplcore.jobs")
    assert asyncio.run(run_job("nightly-report", report)) == EXIT_OK == 0
    [run] = runs
    line = run_line(caplog)
    assert (run.job, line.job) == ("nightly-report", "nightly-report")  # type: ignore[attr-defined]
    assert line.run_id == run.run_id  # type: ignore[attr-defined]
    assert len(run.run_id) == 32
    assert line.outcome == "succeeded"  # type: ignore[attr-defined]
    assert line.exit_status == 0  # type: ignore[attr-defined]
    assert line.duration_ms >= 0  # type: ignore[attr-defined]
    assert line.levelno == logging.INFO


def test_a_run_that_raises_exits_1_and_logs_the_error(caplog: pytest.LogCaptureFixture) -> None:
    async def report(_run: JobRun) -> None:
        raise NotFoundError("no such ledger")

    assert asyncio.run(run_job("nightly-report", report, run_id="run-1")) == EXIT_FAILED == 1
    line = run_line(caplog)
    assert line.levelno == logging.ERROR
    assert line.exc_info
    assert (line.run_id, line.outcome) == ("run-1", "failed")  # type: ignore[attr-defined]
    assert (line.error, line.error_code) == ("NotFoundError", "not_found")  # type: ignore[attr-defined]


def test_sigterm_interrupts_the_run_which_exits_143(caplog: pytest.LogCaptureFixture) -> None:
    async def endless(_run: JobRun) -> None:
        os.kill(os.getpid(), signal.SIGTERM)
        await asyncio.sleep(30)

    assert asyncio.run(run_job("endless", endless)) == EXIT_INTERRUPTED == 143
    line = run_line(caplog)
    assert line.levelno == logging.WARNING
    assert line.outcome == "interrupted"  # type: ignore[attr-defined]


def test_each_run_is_a_trace_whose_ids_are_on_its_lines(
    traced: OtlpReceiver, capsys: pytest.CaptureFixture[str]
) -> None:
    configure_logging(service_name="orders")

    async def report(run: JobRun) -> None:
        logging.getLogger("orders.jobs").info("report %s written", run.run_id)

    async def broken(_run: JobRun) -> None:
        raise NotFoundError("no such ledger")

    assert asyncio.run(run_job("nightly-report", report, run_id="run-1")) == EXIT_OK
    assert asyncio.run(run_job("broken", broken, run_id="run-2")) == EXIT_FAILED
    spans = {span.name: span for span in traced.wait_for(lambda spans: len(spans) == 2)}
    reported, failed = spans["job nightly-report"], spans["job broken"]
    assert (reported.kind, reported.parent_span_id, reported.failed) == ("INTERNAL", "", False)
    assert reported.attributes == {"job.name": "nightly-report", "job.run_id": "run-1"}
    assert failed.trace_id != reported.trace_id
    assert (failed.failed, failed.attributes["error.type"]) == (True, "NotFoundError")
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    ids = {(line["event"], line["trace_id"], line["span_id"]) for line in lines}
    assert ids == {
        ("report run-1 written", reported.trace_id, reported.span_id),
        ("job run", reported.trace_id, reported.span_id),
        ("job run", failed.trace_id, failed.span_id),
    }
