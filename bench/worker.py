"""The queue worker's own cost: smplcore's worker with a handler that does nothing, beside a bare
boto3 receive/delete loop, on the same moto server (smplcore.localsqs), the worker's log lines
written (JSON, to /dev/null) as a deployed worker writes them. Each round fills a fresh queue for
each, in alternating order; the figure is the median of the per-round ratios.
"""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from functools import partial
from pathlib import Path

import boto3  # type: ignore[import-untyped]  # moto's dependency; no stubs in the lock

from bench.stats import Figure, Report, Summary, Target
from bench.workspace import Workspace, timed
from smplcore.localsqs import LOCAL_CREDENTIALS, LocalQueue, create_queue, sqs_server
from smplcore.logging import configure_logging
from smplcore.worker import Message, Worker, WorkerSettings

MESSAGES = 500
"""Per run: enough that the clients' start-up is a few percent of it."""
WORKER_TARGET = Target(">=", 0.8, on="ratio")
"""DESIGN.md: the worker with an empty handler at >= 0.8 of a bare boto3 receive/delete loop."""
REGION = "us-east-1"


def measure_worker(workspace: Workspace, report: Report) -> None:
    options = workspace.options
    count = MESSAGES
    os.environ.update(LOCAL_CREDENTIALS)
    with Path(os.devnull).open("w") as devnull, sqs_server() as endpoint:
        configure_logging("INFO", service_name="bench", stream=devnull)
        sqs = boto3.client("sqs", region_name=REGION, endpoint_url=endpoint)
        rates: dict[str, list[float]] = {"worker": [], "bare": []}
        cpu: dict[str, list[float]] = {"worker": [], "bare": []}
        for index in range(options.warmups + options.repetitions):
            order = ("worker", "bare") if index % 2 else ("bare", "worker")
            for name in order:
                queue = asyncio.run(create_queue(endpoint, f"bench-{uuid.uuid4().hex[:12]}"))
                fill(sqs, queue, count)
                started = time.process_time()
                if name == "bare":
                    seconds = timed(partial(bare_loop, sqs, queue, count))
                else:
                    seconds = timed(partial(asyncio.run, worker_loop(endpoint, queue, count)))
                if index >= options.warmups:
                    rates[name].append(count / seconds)
                    cpu[name].append((time.process_time() - started) / count * 1e6)
    worker, bare = Summary.of(rates["worker"]), Summary.of(rates["bare"])
    ratios = [ours / floor for ours, floor in zip(rates["worker"], rates["bare"], strict=True)]
    report.figures.append(
        Figure(
            section="worker",
            name="messages/s, handler doing nothing (concurrency 10, one log line each)",
            unit="msg/s",
            value=worker,
            baseline_name="bare boto3 receive (10) / delete loop, same moto server",
            baseline=bare,
            target=WORKER_TARGET,
            ratio=Summary.of(ratios),
            note=f"{count} messages per run",
        )
    )
    # The client's own CPU time per message (the server's excepted): what the worker adds to a
    # receive and a delete, unlike wall times, hardly moves with the machine's load.
    report.figures.append(
        Figure(
            section="worker",
            name="client CPU per message (the per-message overhead is the difference)",
            unit="µs",
            value=Summary.of(cpu["worker"]),
            baseline_name="bare boto3 loop",
            baseline=Summary.of(cpu["bare"]),
            note="time.process_time() of the benchmark's process; moto runs in its own",
        )
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
