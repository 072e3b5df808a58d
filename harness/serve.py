"""Waiting for a started service: the demo and the tests start services the same way."""

from __future__ import annotations

import subprocess
import time
import urllib.request
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
