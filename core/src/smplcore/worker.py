"""A queue worker: SQS messages handed to the service's handler, at least once.

The service writes one coroutine, ``async def handle(message: Message) -> None``; the core does
the rest, the same way in every worker:

- it receives up to ``concurrency`` messages at a time (long polling), each hidden from other
  consumers for ``visibility_timeout_seconds``, and extends that while the handler still runs;
- a message is deleted only once its handler has returned: a handler that raises leaves it on
  the queue, visible again after ``retry_delay_seconds``; after the queue's ``maxReceiveCount``
  receives (its redrive policy) SQS moves it to the dead-letter queue;
- SIGTERM (what ECS sends on every deploy) stops receiving, and the messages being handled get
  ``stop_timeout_seconds`` to finish; a handler still running then is cancelled and its message
  made visible again at once. No message is deleted unless its handler returned;
- one log line per message (``smplcore.worker``): message id, queue, receive count, duration and
  outcome, with the error (its class, and its code for the core's errors) when the handler raised;
- while tracing is on (:mod:`smplcore.telemetry`), a consumer span per message, ``process
  <queue>``, that continues the trace whose ``traceparent`` the message carries in its attributes
  (:func:`send_message` puts it there): the request that sent the work and the worker that does
  it are one trace. The handler's log lines and the message's line carry its ids.

Needs the ``worker`` extra (``smplkit-core[worker]``: aiobotocore), which a service that only
serves HTTP does not install.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import signal
import time
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, Any, Final, TypeVar

from aiobotocore.session import get_session
from botocore.exceptions import BotoCoreError, ClientError
from pydantic import BaseModel, ConfigDict, Field

from smplcore.errors import SmplkitError
from smplcore.telemetry import Span, span, trace_headers

if TYPE_CHECKING:
    from types_aiobotocore_sqs import SQSClient
    from types_aiobotocore_sqs.type_defs import MessageAttributeValueTypeDef, MessageTypeDef

__all__ = ["Handler", "Message", "Worker", "WorkerSettings", "run_worker", "send_message"]

logger = logging.getLogger("smplcore.worker")

T = TypeVar("T")
MAX_BATCH: Final = 10
"""The most messages one ReceiveMessage call returns (an SQS limit)."""
RELEASE_TIMEOUT_SECONDS: Final = 5.0
"""How long the release of interrupted messages may take once the stop timeout has passed."""


class WorkerSettings(BaseModel):
    """How the worker consumes its queue. The service builds it from its own settings."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    queue_url: str
    """The queue's URL (``https://sqs.<region>.amazonaws.com/<account>/<name>``)."""
    region: str
    """The queue's AWS region."""
    endpoint_url: str | None = None
    """Another SQS endpoint: a local emulator (moto's server) for tests and local runs."""
    concurrency: Annotated[int, Field(ge=1, le=100)] = 10
    """Messages handled at once, at most."""
    visibility_timeout_seconds: Annotated[int, Field(ge=2, le=43_200)] = 60
    """How long a received message stays hidden; extended while its handler runs."""
    wait_time_seconds: Annotated[int, Field(ge=0, le=20)] = 20
    """Long polling: how long one receive waits for a message to arrive."""
    retry_delay_seconds: Annotated[int, Field(ge=0, le=43_200)] = 10
    """How long a message whose handler failed stays hidden before it is received again."""
    stop_timeout_seconds: Annotated[float, Field(gt=0, le=120)] = 25
    """After SIGTERM, how long the handlers still running get to finish. Keep it below the ECS
    container's ``stopTimeout``, after which ECS kills the process."""


@dataclass(frozen=True, slots=True)
class Message:
    """One received message, as the handler sees it."""

    message_id: str
    body: str
    receive_count: int
    """1 on the first delivery; more when the message was received before (at least once)."""
    queue: str
    """The queue's name."""
    sent_at: datetime
    attributes: Mapping[str, str] = field(default_factory=dict)
    """The message attributes with a string value."""

    def json(self) -> Any:
        """The body, parsed as JSON."""
        return json.loads(self.body)


Handler = Callable[[Message], Coroutine[Any, Any, None]]
"""What the service writes: handles one message, and raises when it could not."""


class Worker:
    """Consumes one queue with one handler until :meth:`stop` is called."""

    def __init__(self, handler: Handler, settings: WorkerSettings) -> None:
        self.handler = handler
        self.settings = settings
        self.queue = _queue_name(settings.queue_url)
        self._stopping = asyncio.Event()
        self._handling: set[asyncio.Task[None]] = set()
        self._max_receives: int | None = None

    def stop(self) -> None:
        """Stop receiving; the messages being handled get the stop timeout to finish."""
        self._stopping.set()

    async def run(self) -> None:
        """Receive and handle messages until :meth:`stop`; returns once every message received
        is either deleted (handled) or visible again."""
        session = get_session()
        async with session.create_client(
            "sqs", region_name=self.settings.region, endpoint_url=self.settings.endpoint_url
        ) as sqs:
            self._max_receives = await self._max_receive_count(sqs)
            processing: set[asyncio.Task[None]] = set()
            while not self._stopping.is_set():
                if len(processing) >= self.settings.concurrency:
                    await self._first_of(asyncio.wait(processing, return_when="FIRST_COMPLETED"))
                    continue
                batch = min(MAX_BATCH, self.settings.concurrency - len(processing))
                received = await self._first_of(self._receive(sqs, batch))
                for raw in received or []:
                    task = asyncio.create_task(self._process(sqs, raw))
                    processing.add(task)
                    task.add_done_callback(processing.discard)
            await self._finish(processing)

    async def _first_of(self, work: Awaitable[T]) -> T | None:
        """``work``'s result, or None when the worker is stopped first (``work`` is then
        cancelled: a receive cancelled in flight leaves its messages hidden until their
        visibility timeout, and then they are received again)."""
        task = asyncio.ensure_future(work)
        stopping = asyncio.create_task(self._stopping.wait())
        try:
            await asyncio.wait({task, stopping}, return_when="FIRST_COMPLETED")
        finally:
            stopping.cancel()
        if task.done():
            return task.result()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        return None

    async def _receive(self, sqs: SQSClient, batch: int) -> list[MessageTypeDef]:
        try:
            response = await sqs.receive_message(
                QueueUrl=self.settings.queue_url,
                MaxNumberOfMessages=batch,
                WaitTimeSeconds=self.settings.wait_time_seconds,
                VisibilityTimeout=self.settings.visibility_timeout_seconds,
                MessageSystemAttributeNames=["ApproximateReceiveCount", "SentTimestamp"],
                MessageAttributeNames=["All"],
            )
        except (BotoCoreError, ClientError):
            # The queue is unreachable for now (throttled, a network failure): try again soon,
            # rather than exit and have ECS restart the task.
            logger.exception("receiving from %s failed; retrying in 1 s", self.queue)
            await asyncio.sleep(1)
            return []
        return response.get("Messages", [])

    async def _finish(self, processing: set[asyncio.Task[None]]) -> None:
        """The handlers still running get the stop timeout; then they are cancelled, and their
        messages released (visible again at once)."""
        if not processing:
            return
        _, late = await asyncio.wait(processing, timeout=self.settings.stop_timeout_seconds)
        for task in self._handling:
            task.cancel()
        if late:
            await asyncio.wait(late, timeout=RELEASE_TIMEOUT_SECONDS)

    async def _process(self, sqs: SQSClient, raw: MessageTypeDef) -> None:
        message = _message(raw, self.queue)
        with span(
            f"process {self.queue}",
            kind="consumer",
            carrier=message.attributes,
            attributes={
                **_messaging(self.queue, "process"),
                "messaging.message.id": message.message_id,
            },
        ) as traced:
            await self._handle(sqs, raw["ReceiptHandle"], message, traced)

    async def _handle(self, sqs: SQSClient, receipt: str, message: Message, traced: Span) -> None:
        started = time.perf_counter()
        handling = asyncio.create_task(self.handler(message))
        self._handling.add(handling)
        extending = asyncio.create_task(self._extend_visibility(sqs, message, receipt))
        try:
            await asyncio.wait({handling})
        finally:
            self._handling.discard(handling)
            extending.cancel()
        fields: dict[str, Any] = {
            "message_id": message.message_id,
            "queue": self.queue,
            "receive_count": message.receive_count,
        }
        if handling.cancelled():
            await self._change_visibility(sqs, message, receipt, 0)
            traced.fail("interrupted")
            self._log(logging.WARNING, "interrupted", fields, started)
        elif (error := handling.exception()) is not None:
            await self._change_visibility(sqs, message, receipt, self.settings.retry_delay_seconds)
            fields["error"] = type(error).__name__
            if isinstance(error, SmplkitError):
                fields["error_code"] = error.code
            if self._max_receives is not None:
                # SQS moves it to the dead-letter queue instead of its next delivery.
                fields["dead_letter"] = message.receive_count >= self._max_receives
            traced.set_attribute("error.type", fields["error"])
            traced.fail(fields["error"])
            self._log(logging.ERROR, "failed", fields, started, error)
        else:
            try:
                await sqs.delete_message(QueueUrl=self.settings.queue_url, ReceiptHandle=receipt)
            except (BotoCoreError, ClientError) as error:
                # Handled, but SQS will deliver it again: handlers are idempotent for this.
                fields["error"] = type(error).__name__
                traced.fail(fields["error"])
                self._log(logging.ERROR, "not_deleted", fields, started, error)
            else:
                self._log(logging.INFO, "processed", fields, started)

    def _log(
        self,
        level: int,
        outcome: str,
        fields: dict[str, Any],
        started: float,
        error: BaseException | None = None,
    ) -> None:
        fields["duration_ms"] = round((time.perf_counter() - started) * 1000, 3)
        fields["outcome"] = outcome
        exc_info = (type(error), error, error.__traceback__) if error is not None else None
        logger.log(level, "message", extra=fields, exc_info=exc_info)

    async def _extend_visibility(self, sqs: SQSClient, message: Message, receipt: str) -> None:
        """While the handler runs, keep the message hidden: every half visibility timeout, hide
        it for another whole one."""
        timeout = self.settings.visibility_timeout_seconds
        while True:
            await asyncio.sleep(timeout / 2)
            if not await self._change_visibility(sqs, message, receipt, timeout):
                return

    async def _change_visibility(
        self, sqs: SQSClient, message: Message, receipt: str, seconds: int
    ) -> bool:
        try:
            await sqs.change_message_visibility(
                QueueUrl=self.settings.queue_url, ReceiptHandle=receipt, VisibilityTimeout=seconds
            )
        except (BotoCoreError, ClientError) as error:
            # The message reappears when its current visibility timeout ends anyway.
            logger.warning(
                "could not change the visibility of message %s: %s", message.message_id, error
            )
            return False
        return True

    async def _max_receive_count(self, sqs: SQSClient) -> int | None:
        """The queue's redrive policy's maxReceiveCount, or None (and a warning) without one."""
        response = await sqs.get_queue_attributes(
            QueueUrl=self.settings.queue_url, AttributeNames=["RedrivePolicy"]
        )
        policy = response.get("Attributes", {}).get("RedrivePolicy")
        if policy is None:
            logger.warning(
                "queue %s has no dead-letter queue: a message that always fails is retried forever",
                self.queue,
            )
            return None
        return int(json.loads(policy)["maxReceiveCount"])


def _queue_name(queue_url: str) -> str:
    return queue_url.rstrip("/").rsplit("/", 1)[-1]


def _messaging(queue: str, operation: str) -> dict[str, str]:
    """OpenTelemetry's messaging attributes of a span that sends to or processes from ``queue``."""
    return {
        "messaging.system": "aws_sqs",
        "messaging.destination.name": queue,
        "messaging.operation.type": operation,
    }


async def send_message(
    sqs: SQSClient,
    queue_url: str,
    body: str,
    *,
    attributes: Mapping[str, str] | None = None,
) -> str:
    """Send ``body`` (and ``attributes``, string message attributes) to the queue at
    ``queue_url``; returns the message's id.

    While tracing is on, the send is a producer span (``send <queue>``) and the message carries
    its ``traceparent`` among its attributes, so the worker that handles it continues this trace
    (SQS allows 10 attributes: the trace takes one or two of them).
    """
    queue = _queue_name(queue_url)
    with span(f"send {queue}", kind="producer", attributes=_messaging(queue, "send")) as traced:
        values = {**(attributes or {}), **trace_headers()}
        typed: dict[str, MessageAttributeValueTypeDef] = {
            name: {"DataType": "String", "StringValue": value} for name, value in values.items()
        }
        response = await sqs.send_message(
            QueueUrl=queue_url, MessageBody=body, MessageAttributes=typed
        )
        traced.set_attribute("messaging.message.id", response["MessageId"])
    return response["MessageId"]


def _message(raw: MessageTypeDef, queue: str) -> Message:
    system = raw.get("Attributes", {})
    return Message(
        message_id=raw["MessageId"],
        body=raw.get("Body", ""),
        receive_count=int(system.get("ApproximateReceiveCount", "1")),
        queue=queue,
        sent_at=datetime.fromtimestamp(int(system.get("SentTimestamp", "0")) / 1000, UTC),
        attributes={
            name: value["StringValue"]
            for name, value in raw.get("MessageAttributes", {}).items()
            if "StringValue" in value
        },
    )


async def run_worker(handler: Handler, settings: WorkerSettings) -> None:
    """Run a :class:`Worker` until SIGTERM or SIGINT, then stop it cleanly (the process's entry
    point: ``asyncio.run(run_worker(handle, settings))``)."""
    worker = Worker(handler, settings)
    loop = asyncio.get_running_loop()
    signals = (signal.SIGTERM, signal.SIGINT)
    for number in signals:
        loop.add_signal_handler(number, worker.stop)
    logger.info(
        "worker started", extra={"queue": worker.queue, "concurrency": settings.concurrency}
    )
    try:
        await worker.run()
    finally:
        for number in signals:
            loop.remove_signal_handler(number)
    logger.info("worker stopped", extra={"queue": worker.queue})
