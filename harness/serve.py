"""Serving a generated service: the demo and the tests start, wait for and stop it the same way."""

from __future__ import annotations

import json
import subprocess
import time
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any


class ServiceDidNotStartError(RuntimeError):
    """The service exited, or did not answer /livez in time; the caller adds its output."""


def wait_until_live(base_url: str, process: subprocess.Popen[Any], seconds: float = 30) -> None:
    """Return once `GET <base_url>/livez` answers 2xx."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise ServiceDidNotStartError(f"the service exited ({process.returncode}) at start-up")
        try:
            with urllib.request.urlopen(f"{base_url}/livez", timeout=1):  # noqa: S310 - loopback
                return
        except OSError:
            time.sleep(0.1)
    raise ServiceDidNotStartError(f"the service did not answer {base_url}/livez within {seconds} s")


def json_log_lines(log: Path) -> list[dict[str, Any]]:
    """The JSON lines a running service has finished writing to `log` (it may be halfway
    through the last one)."""
    *complete, _unfinished = log.read_text().split("\n")
    return [json.loads(line) for line in complete if line[:1] == "{"]


@contextmanager
def serving(
    argv: Sequence[str], *, cwd: Path, env: Mapping[str, str], base_url: str, log: Path
) -> Iterator[subprocess.Popen[str]]:
    """Start `argv`, its output going to `log` (a file: a pipe nobody reads would fill and stall
    the service), and yield its process once /livez answers; terminate it at the end.

    When it does not start, ServiceDidNotStartError carries its output.
    """
    with log.open("w") as output:
        process = subprocess.Popen(  # noqa: S603 - a generated service's own entry point
            list(argv), cwd=cwd, env=dict(env), stdout=output, stderr=subprocess.STDOUT, text=True
        )
    try:
        try:
            wait_until_live(base_url, process)
        except ServiceDidNotStartError as error:
            raise ServiceDidNotStartError(f"{error}:\n{log.read_text()}") from None
        yield process
    finally:
        process.terminate()
        process.wait(timeout=10)
