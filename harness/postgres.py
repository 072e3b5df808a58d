"""A throwaway PostgreSQL server for database tests, or the one named by TEST_DATABASE_URL.

PostgreSQL refuses to run as root, so as root the cluster is created and started as the `postgres`
system user. The cluster lives in a temporary folder, listens on a free loopback port with trust
authentication, and is stopped and deleted at the end.
"""

from __future__ import annotations

import os
import shutil
import socket
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from harness.commands import run

INSTALL_HINT = (
    "PostgreSQL server binaries (initdb, pg_ctl) are needed to start a throwaway cluster: install "
    "them (Debian: apt-get install postgresql) or set TEST_DATABASE_URL to a server you can create "
    "databases on, e.g. postgresql://postgres:postgres@127.0.0.1:5432/postgres."
)


class PostgresUnavailableError(RuntimeError):
    """Neither TEST_DATABASE_URL nor the PostgreSQL server binaries are available."""


def free_port() -> int:
    """A TCP port on loopback that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _as_cluster_owner(args: list[str]) -> list[str]:
    if os.geteuid() == 0:
        return ["runuser", "-u", "postgres", "--", *args]
    return args


@contextmanager
def postgres_server() -> Iterator[str]:
    """Yield the URL of a PostgreSQL server: TEST_DATABASE_URL, or a throwaway local cluster."""
    given = os.environ.get("TEST_DATABASE_URL")
    if given:
        yield given
        return
    initdb, pg_ctl = shutil.which("initdb"), shutil.which("pg_ctl")
    if not (initdb and pg_ctl):
        raise PostgresUnavailableError(INSTALL_HINT)
    base = Path(tempfile.mkdtemp(prefix="template-pg-"))
    data, sockets = base / "data", base / "sockets"
    sockets.mkdir()
    if os.geteuid() == 0:
        shutil.chown(base, user="postgres")
        shutil.chown(sockets, user="postgres")
    port = free_port()
    run(_as_cluster_owner([initdb, "-D", str(data), "-A", "trust", "-U", "postgres", "-E", "UTF8"]))
    options = f"-p {port} -k {sockets} -c listen_addresses=127.0.0.1 -c fsync=off"
    log = base / "server.log"
    run(_as_cluster_owner([pg_ctl, "-D", str(data), "-l", str(log), "-o", options, "-w", "start"]))
    try:
        yield f"postgresql://postgres@127.0.0.1:{port}/postgres"
    finally:
        run(
            _as_cluster_owner([pg_ctl, "-D", str(data), "-m", "immediate", "-w", "stop"]),
            check=False,
        )
        shutil.rmtree(base, ignore_errors=True)
