"""The queue worker's own cost: smplcore's worker with a handler that does nothing, beside a bare
boto3 receive/delete loop, on the same moto server (smplcore.localsqs), the worker's log lines
written (JSON, to /dev/null) as a deployed worker writes them. Each round fills a fresh queue for
each, in alternating order; the figure is the median of the per-round ratios.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Callable
from functools import partial
from pathlib import Path

import boto3  # type: ignore[import-untyped]  # moto's dependency; no stubs in the lock

from bench.stats import Report, Target
from bench.workspace import Workspace, alternate, timed
from smplcore.localsqs import LOCAL_CREDENTIALS, LocalQueue, create_queue, sqs_server
from smplcore.logging import configure_logging
from smplcore.worker import Message, Worker, WorkerSettings

MESSAGES = 500
"""Per run: enough that the clients' start-up is a few percent of it."""
WORKER_TARGET = Target(">=", 0.8)
"""DESIGN.md: the worker with an empty handler at >= 0.8 of a bare boto3 receive/delete loop."""
REGION = "us-east-1"


def measure_worker(workspace: Workspace, report: Report) -> None:
    """The queue worker's messages/s with a handler doing nothing, against a bare boto3 loop."""
    options = workspace.options
    os.environ.update(LOCAL_CREDENTIALS)
    with Path(os.devnull).open("w") as devnull, sqs_server() as endpoint:
        configure_logging("INFO", service_name="bench", stream=devnull)
        sqs = boto3.client("sqs", region_name=REGION, endpoint_url=endpoint)

        def rate(drain: Callable[[LocalQueue], object]) -> Callable[[], float]:
            def once() -> float:
                queue = asyncio.run(create_queue(endpoint, f"bench-{uuid.uuid4().hex[:12]}"))
                fill(sqs, queue, MESSAGES)
                return MESSAGES / timed(partial(drain, queue))

            return once

        rates = alternate(
            {
                "worker": rate(lambda queue: asyncio.run(worker_loop(endpoint, queue, MESSAGES))),
                "bare": rate(lambda queue: bare_loop(sqs, queue, MESSAGES)),
            },
            options.repetitions,
            options.warmups,
        )
    report.add(
        "worker",
        "messages/s, handler doing nothing (concurrency 10, one log line each)",
        "msg/s",
        rates["worker"],
        rates["bare"],
        baseline_name="bare boto3 receive (10) / delete loop, same moto server",
        target=WORKER_TARGET,
        note=f"{MESSAGES} messages per run",
    )


def fill(sqs: object, queue: LocalQueue, count: int) -> None:
    """`count` messages on the queue, ten per call (not timed)."""
    for start in range(0, count, 10):
        entries = [{"Id": str(n), "MessageBody": f'{{"n": {n}}}'} for n in range(start, start + 10)]
        sqs.send_message_batch(QueueUrl=queue.url, Entries=entries[: count - start])  # type: ignore[attr-defined]


def bare_loop(sqs: object, queue: LocalQueue, count: int) -> None:
    """What a team writes without the core: receive ten, delete each, until all are gone."""
    handled = 0
    while handled < count:
        received = sqs.receive_message(  # type: ignore[attr-defined]
            QueueUrl=queue.url, MaxNumberOfMessages=10, WaitTimeSeconds=1
        )
        for message in received.get("Messages", []):
            sqs.delete_message(QueueUrl=queue.url, ReceiptHandle=message["ReceiptHandle"])  # type: ignore[attr-defined]
            handled += 1


async def worker_loop(endpoint: str, queue: LocalQueue, count: int) -> None:
    """The core's worker, until it has handled `count` messages and deleted them."""
    handled = 0
    done = asyncio.Event()

    async def handle(_message: Message) -> None:
        nonlocal handled
        handled += 1
        if handled == count:
            done.set()

    settings = WorkerSettings(
        queue_url=queue.url, region=REGION, endpoint_url=endpoint, wait_time_seconds=1
    )
    worker = Worker(handle, settings)
    running = asyncio.create_task(worker.run())
    await done.wait()
    worker.stop()
    await running
