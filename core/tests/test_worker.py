"""The queue worker against a real SQS-compatible server (moto's, started for the session)."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Awaitable, Iterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

import pytest
from aiobotocore.session import get_session
from pydantic import ValidationError

from smplcore import ConflictError, configure_logging, span
from smplcore.localsqs import LOCAL_CREDENTIALS, LocalQueue, create_queue, sqs_server
from smplcore.testing import OtlpReceiver
from smplcore.worker import Message, Worker, WorkerSettings, run_worker, send_message

if TYPE_CHECKING:
    from types_aiobotocore_sqs import SQSClient

MAX_RECEIVES = 3
SIGTERM_RUNS = 20


@pytest.fixture(scope="session")
def endpoint_url() -> Iterator[str]:
    with sqs_server() as url:
        yield url


@pytest.fixture(autouse=True)
def aws_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in LOCAL_CREDENTIALS.items():
        monkeypatch.setenv(name, value)


@pytest.fixture
def queue(endpoint_url: str) -> LocalQueue:
    name = f"test-{uuid.uuid4().hex[:12]}"
    return asyncio.run(create_queue(endpoint_url, name, max_receive_count=MAX_RECEIVES))


def settings_for(endpoint_url: str, queue: LocalQueue, **changes: Any) -> WorkerSettings:
    values: dict[str, Any] = {
        "queue_url": queue.url,
        "region": "us-east-1",
        "endpoint_url": endpoint_url,
        "wait_time_seconds": 1,
        "retry_delay_seconds": 0,
        **changes,
    }
    return WorkerSettings(**values)


@asynccontextmanager
async def sqs_client(endpoint_url: str) -> AsyncIterator[SQSClient]:
    async with get_session().create_client(
        "sqs", region_name="us-east-1", endpoint_url=endpoint_url
    ) as client:
        yield client


async def send(endpoint_url: str, queue_url: str, *bodies: str) -> list[str]:
    async with sqs_client(endpoint_url) as sqs:
        return [
            (await sqs.send_message(QueueUrl=queue_url, MessageBody=body))["MessageId"]
            for body in bodies
        ]


async def counts(endpoint_url: str, queue_url: str) -> tuple[int, int]:
    """(visible, in flight) messages of the queue."""
    async with sqs_client(endpoint_url) as sqs:
        attributes = (
            await sqs.get_queue_attributes(
                QueueUrl=queue_url,
                AttributeNames=[
                    "ApproximateNumberOfMessages",
                    "ApproximateNumberOfMessagesNotVisible",
                ],
            )
        )["Attributes"]
    return (
        int(attributes["ApproximateNumberOfMessages"]),
        int(attributes["ApproximateNumberOfMessagesNotVisible"]),
    )


async def run_until(worker: Worker, done: Awaitable[object], timeout: float = 20) -> None:
    """Run the worker until ``done`` completes, then stop it and wait for it to return."""
    running = asyncio.create_task(worker.run())
    try:
        await asyncio.wait_for(done, timeout)
    finally:
        worker.stop()
        await asyncio.wait_for(running, timeout)


def message_lines(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "smplcore.worker" and r.msg == "message"]


def test_each_message_is_handled_once_then_deleted_with_one_log_line(
    endpoint_url: str, queue: LocalQueue, caplog: pytest.LogCaptureFixture
) -> None:
    handled: list[Message] = []
    all_handled = asyncio.Event()

    async def handle(message: Message) -> None:
        handled.append(message)
        if len(handled) == 5:
            all_handled.set()

    async def scenario() -> list[str]:
        ids = await send(endpoint_url, queue.url, *(json.dumps({"n": n}) for n in range(5)))
        worker = Worker(handle, settings_for(endpoint_url, queue))
        await run_until(worker, all_handled.wait())
        return ids

    caplog.set_level(logging.INFO, "smplcore.worker")
    ids = asyncio.run(scenario())

    assert sorted(message.message_id for message in handled) == sorted(ids)
    assert sorted(message.json()["n"] for message in handled) == list(range(5))
    assert {(message.queue, message.receive_count) for message in handled} == {
        (queue.url.rsplit("/", 1)[-1], 1)
    }
    assert asyncio.run(counts(endpoint_url, queue.url)) == (0, 0)
    lines = message_lines(caplog)
    assert sorted(line.message_id for line in lines) == sorted(ids)  # type: ignore[attr-defined]
    for line in lines:
        assert line.levelno == logging.INFO
        assert line.outcome == "processed"  # type: ignore[attr-defined]
        assert line.receive_count == 1  # type: ignore[attr-defined]
        assert line.queue == queue.url.rsplit("/", 1)[-1]  # type: ignore[attr-defined]
        assert line.duration_ms >= 0  # type: ignore[attr-defined]


def test_a_failing_message_is_retried_then_dead_lettered_after_max_receives(
    endpoint_url: str, queue: LocalQueue, caplog: pytest.LogCaptureFixture
) -> None:
    receive_counts: list[int] = []

    async def handle(message: Message) -> None:
        receive_counts.append(message.receive_count)
        raise ConflictError("the order changed meanwhile")

    async def dead_lettered() -> None:
        while await counts(endpoint_url, queue.dead_letter_url) == (0, 0):
            await asyncio.sleep(0.1)

    async def scenario() -> None:
        await send(endpoint_url, queue.url, "poison")
        await run_until(Worker(handle, settings_for(endpoint_url, queue)), dead_lettered())

    caplog.set_level(logging.INFO, "smplcore.worker")
    asyncio.run(scenario())

    assert receive_counts == list(range(1, MAX_RECEIVES + 1))
    assert asyncio.run(counts(endpoint_url, queue.url)) == (0, 0)
    assert asyncio.run(counts(endpoint_url, queue.dead_letter_url)) == (1, 0)
    lines = message_lines(caplog)
    assert [line.outcome for line in lines] == ["failed"] * MAX_RECEIVES  # type: ignore[attr-defined]
    assert [line.dead_letter for line in lines] == [False, False, True]  # type: ignore[attr-defined]
    assert {line.error for line in lines} == {"ConflictError"}  # type: ignore[attr-defined]
    assert {line.error_code for line in lines} == {"conflict"}  # type: ignore[attr-defined]
    assert all(line.levelno == logging.ERROR and line.exc_info for line in lines)


def test_a_slow_handler_keeps_its_message_hidden_past_the_visibility_timeout(
    endpoint_url: str, queue: LocalQueue
) -> None:
    started = asyncio.Event()
    finished = asyncio.Event()
    deliveries: list[int] = []

    async def handle(message: Message) -> None:
        deliveries.append(message.receive_count)
        started.set()
        await asyncio.sleep(3.5)  # well past the 2-second visibility timeout
        finished.set()

    async def others_see_nothing_meanwhile() -> None:
        await started.wait()
        async with sqs_client(endpoint_url) as sqs:
            while not finished.is_set():
                response = await sqs.receive_message(QueueUrl=queue.url, WaitTimeSeconds=0)
                assert response.get("Messages", []) == []
                await asyncio.sleep(0.2)

    async def scenario() -> None:
        await send(endpoint_url, queue.url, "slow")
        worker = Worker(handle, settings_for(endpoint_url, queue, visibility_timeout_seconds=2))
        await run_until(worker, others_see_nothing_meanwhile())

    asyncio.run(scenario())
    assert deliveries == [1]
    assert asyncio.run(counts(endpoint_url, queue.url)) == (0, 0)


def test_concurrency_bounds_the_messages_handled_at_once(
    endpoint_url: str, queue: LocalQueue
) -> None:
    running = 0
    most = 0
    handled = 0
    all_handled = asyncio.Event()

    async def handle(_message: Message) -> None:
        nonlocal running, most, handled
        running += 1
        most = max(most, running)
        await asyncio.sleep(0.2)
        running -= 1
        handled += 1
        if handled == 9:
            all_handled.set()

    async def scenario() -> None:
        await send(endpoint_url, queue.url, *map(str, range(9)))
        worker = Worker(handle, settings_for(endpoint_url, queue, concurrency=3))
        await run_until(worker, all_handled.wait())

    asyncio.run(scenario())
    assert most == 3


def sigterm_run(endpoint_url: str, queue: LocalQueue, handler_seconds: float) -> tuple[bool, int]:
    """One message, a handler of ``handler_seconds``, SIGTERM once it started: (whether the
    handler finished, messages left visible on the queue)."""
    started = asyncio.Event()
    finished: list[bool] = []

    async def handle(_message: Message) -> None:
        started.set()
        await asyncio.sleep(handler_seconds)
        finished.append(True)

    async def terminate_once_started() -> None:
        await started.wait()
        os.kill(os.getpid(), signal.SIGTERM)

    async def scenario() -> None:
        await send(endpoint_url, queue.url, "work")
        settings = settings_for(endpoint_url, queue, stop_timeout_seconds=0.3)
        terminating = asyncio.create_task(terminate_once_started())
        await asyncio.wait_for(run_worker(handle, settings), 20)
        await terminating

    asyncio.run(scenario())
    visible, in_flight = asyncio.run(counts(endpoint_url, queue.url))
    assert in_flight == 0  # an interrupted message is released at once, not left hidden
    return bool(finished), visible


@pytest.mark.parametrize("run", range(SIGTERM_RUNS))
def test_sigterm_completes_or_releases_the_message_in_flight_never_loses_it(
    endpoint_url: str, queue: LocalQueue, run: int
) -> None:
    # Every other run, the handler outlasts the stop timeout.
    finished, visible = sigterm_run(endpoint_url, queue, 0.05 if run % 2 else 0.6)
    # Completed and deleted, or not completed and visible again: never deleted unprocessed.
    assert (finished, visible) in {(True, 0), (False, 1)}
    assert finished == bool(run % 2)


def test_run_worker_logs_its_start_and_stop(
    endpoint_url: str, queue: LocalQueue, caplog: pytest.LogCaptureFixture
) -> None:
    async def scenario() -> None:
        async def handle(_message: Message) -> None:
            return None

        running = asyncio.create_task(run_worker(handle, settings_for(endpoint_url, queue)))
        await asyncio.sleep(0.5)
        os.kill(os.getpid(), signal.SIGTERM)
        await asyncio.wait_for(running, 10)

    caplog.set_level(logging.INFO, "smplcore.worker")
    asyncio.run(scenario())
    assert [r.msg for r in caplog.records if r.name == "smplcore.worker"] == [
        "worker started",
        "worker stopped",
    ]


def test_a_queue_without_dead_letter_queue_is_reported(
    endpoint_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    async def scenario() -> None:
        async with sqs_client(endpoint_url) as sqs:
            url = (await sqs.create_queue(QueueName=f"bare-{uuid.uuid4().hex[:8]}"))["QueueUrl"]
        worker = Worker(_nothing, settings_for(endpoint_url, LocalQueue(url, url)))
        await run_until(worker, asyncio.sleep(0.2))

    asyncio.run(scenario())
    assert "has no dead-letter queue" in caplog.text


async def _nothing(_message: Message) -> None:
    return None


@pytest.mark.parametrize(
    "changes",
    [{"concurrency": 0}, {"concurrency": 101}, {"wait_time_seconds": 21}, {"unknown": 1}],
    ids=["no-concurrency", "unbounded-concurrency", "long-poll-too-long", "unknown-setting"],
)
def test_settings_refuse_out_of_range_values(changes: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        WorkerSettings(queue_url="http://q/000/q", region="us-east-1", **changes)


def test_message_attributes_and_sent_time_reach_the_handler(
    endpoint_url: str, queue: LocalQueue
) -> None:
    received: list[Message] = []
    done = asyncio.Event()

    async def handle(message: Message) -> None:
        received.append(message)
        done.set()

    async def scenario() -> None:
        async with sqs_client(endpoint_url) as sqs:
            await sqs.send_message(
                QueueUrl=queue.url,
                MessageBody="{}",
                MessageAttributes={"kind": {"DataType": "String", "StringValue": "order"}},
            )
        await run_until(Worker(handle, settings_for(endpoint_url, queue)), done.wait())

    asyncio.run(scenario())
    [message] = received
    assert message.attributes == {"kind": "order"}
    assert message.sent_at.year >= 2024


def test_localsqs_serves_a_queue_with_its_dead_letter_queue_until_sigterm() -> None:
    async def redrive_policy(endpoint_url: str, queue_url: str) -> dict[str, Any]:
        async with sqs_client(endpoint_url) as sqs:
            response = await sqs.get_queue_attributes(
                QueueUrl=queue_url, AttributeNames=["RedrivePolicy"]
            )
        policy: dict[str, Any] = json.loads(response["Attributes"]["RedrivePolicy"])
        return policy

    command = [sys.executable, "-m", "smplcore.localsqs", "--port", "0", "--queue", "orders"]
    with subprocess.Popen(command, stdout=subprocess.PIPE, text=True) as server:  # noqa: S603
        assert server.stdout is not None
        try:
            queue_url = server.stdout.readline().strip().removeprefix("QUEUE_URL=")
            endpoint_url = server.stdout.readline().strip().removeprefix("SQS_ENDPOINT_URL=")
            policy = asyncio.run(redrive_policy(endpoint_url, queue_url))
        finally:
            server.send_signal(signal.SIGTERM)
        assert server.wait(timeout=15) == 0
    assert policy["maxReceiveCount"] == MAX_RECEIVES
    assert policy["deadLetterTargetArn"].endswith(":orders-dlq")


def test_a_message_continues_the_trace_of_the_request_that_sent_it(
    endpoint_url: str, queue: LocalQueue, traced: OtlpReceiver, capsys: pytest.CaptureFixture[str]
) -> None:
    configure_logging(service_name="orders")
    done = asyncio.Event()

    async def handle(message: Message) -> None:
        logging.getLogger("orders.handler").info("order %s packed", message.json()["order"])
        done.set()

    async def scenario() -> str:
        with span("POST /v1/orders", kind="server"):
            async with sqs_client(endpoint_url) as sqs:
                message_id = await send_message(
                    sqs, queue.url, '{"order": "o-1"}', attributes={"kind": "order"}
                )
        await run_until(Worker(handle, settings_for(endpoint_url, queue)), done.wait())
        return message_id

    message_id = asyncio.run(scenario())
    spans = {span.kind: span for span in traced.wait_for(lambda spans: len(spans) == 3)}
    request, sent, processed = spans["SERVER"], spans["PRODUCER"], spans["CONSUMER"]
    name = queue.url.rsplit("/", 1)[-1]
    assert (sent.name, processed.name) == (f"send {name}", f"process {name}")
    assert {span.trace_id for span in spans.values()} == {request.trace_id}
    assert sent.parent_span_id == request.span_id
    assert processed.parent_span_id == sent.span_id
    for span_ in (sent, processed):
        assert span_.attributes["messaging.message.id"] == message_id
        assert span_.attributes["messaging.destination.name"] == name
        assert span_.attributes["messaging.system"] == "aws_sqs"
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    of_message = [line for line in lines if line["event"] in {"order o-1 packed", "message"}]
    assert [line["event"] for line in of_message] == ["order o-1 packed", "message"]
    for line in of_message:
        assert (line["trace_id"], line["span_id"]) == (request.trace_id, processed.span_id)
