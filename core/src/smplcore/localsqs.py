"""A local SQS for a worker's tests and local runs: moto's server, a maintained AWS emulator.

Needs ``moto[server]`` (a worker's dev dependency) and the ``worker`` extra. In tests::

    with sqs_server() as endpoint_url:
        queue = asyncio.run(create_queue(endpoint_url, "orders", max_receive_count=3))

On a laptop, ``python -m smplcore.localsqs --port 4566 --queue orders`` serves the queue and its
dead-letter queue until Ctrl-C.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

from aiobotocore.session import get_session

__all__ = ["LOCAL_CREDENTIALS", "LocalQueue", "create_queue", "main", "sqs_server"]

LOCAL_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "local",
    "AWS_SECRET_ACCESS_KEY": "local",
}
"""What a client needs in its environment to talk to the local server (any value does)."""
REGION = "us-east-1"
START_TIMEOUT_SECONDS = 30.0


@dataclass(frozen=True, slots=True)
class LocalQueue:
    """A queue of the local server and its dead-letter queue."""

    url: str
    dead_letter_url: str


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _wait_until_listening(process: subprocess.Popen[bytes], port: int) -> None:
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(
                f"moto's server exited with status {process.returncode}: is moto[server] "
                "installed (pip install 'moto[server]')?"
            )
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
        except OSError:
            time.sleep(0.05)
        else:
            return
    raise TimeoutError(f"moto's server did not listen on port {port} in {START_TIMEOUT_SECONDS} s")


@contextmanager
def sqs_server(port: int | None = None) -> Iterator[str]:
    """moto's server on loopback (a free port unless given); yields its endpoint URL, and stops
    it at the end. Its queues live in its memory: they are gone once it stops."""
    port = port or _free_port()
    process = subprocess.Popen(  # noqa: S603 - this interpreter, fixed arguments
        [sys.executable, "-m", "moto.server", "--host", "127.0.0.1", "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        _wait_until_listening(process, port)
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


async def create_queue(
    endpoint_url: str, name: str, *, max_receive_count: int = 3, region: str = REGION
) -> LocalQueue:
    """Create queue ``name`` and its dead-letter queue ``<name>-dlq`` on the server: after
    ``max_receive_count`` receives, a message moves to the dead-letter queue (as the service's
    Terraform sets it up in AWS)."""
    # The environment's credentials if it has some: else any will do.
    local = "AWS_ACCESS_KEY_ID" not in os.environ
    async with get_session().create_client(
        "sqs",
        region_name=region,
        endpoint_url=endpoint_url,
        aws_access_key_id=LOCAL_CREDENTIALS["AWS_ACCESS_KEY_ID"] if local else None,
        aws_secret_access_key=LOCAL_CREDENTIALS["AWS_SECRET_ACCESS_KEY"] if local else None,
    ) as sqs:
        dead_letter = await sqs.create_queue(QueueName=f"{name}-dlq")
        dead_letter_arn = (
            await sqs.get_queue_attributes(
                QueueUrl=dead_letter["QueueUrl"], AttributeNames=["QueueArn"]
            )
        )["Attributes"]["QueueArn"]
        redrive = {"deadLetterTargetArn": dead_letter_arn, "maxReceiveCount": max_receive_count}
        queue = await sqs.create_queue(
            QueueName=name, Attributes={"RedrivePolicy": json.dumps(redrive)}
        )
    return LocalQueue(url=queue["QueueUrl"], dead_letter_url=dead_letter["QueueUrl"])


def main(argv: Sequence[str] | None = None) -> int:
    """Serve a local SQS with one queue (and its dead-letter queue) until Ctrl-C."""
    parser = argparse.ArgumentParser(prog="python -m smplcore.localsqs", description=main.__doc__)
    parser.add_argument("--port", type=int, default=4566, help="0: any free port")
    parser.add_argument("--queue", required=True, help="the queue's name")
    parser.add_argument("--max-receive-count", type=int, default=3)
    args = parser.parse_args(argv)
    with sqs_server(args.port) as endpoint_url:
        queue = asyncio.run(
            create_queue(endpoint_url, args.queue, max_receive_count=args.max_receive_count)
        )
        print(f"QUEUE_URL={queue.url}\nSQS_ENDPOINT_URL={endpoint_url}", flush=True)  # noqa: T201
        signal.signal(signal.SIGTERM, signal.default_int_handler)
        with contextlib.suppress(KeyboardInterrupt):
            while True:
                time.sleep(3600)
    return 0


if __name__ == "__main__":
    sys.exit(main())
