"""A throwaway PostgreSQL server for database tests, or the one named by TEST_DATABASE_URL.

PostgreSQL refuses to run as root, so as root the cluster is created and started as the `postgres`
system user. The cluster lives in a temporary folder, listens on a free loopback port with trust
authentication, and is stopped and deleted at the end. It can be stopped and started again in
between (`Cluster.stop()`, `Cluster.start()`), on the same port, to play a database outage.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import socket
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from harness.commands import run

INSTALL_HINT = (
    "PostgreSQL server binaries (initdb, pg_ctl) are needed to start a throwaway cluster: install "
    "them (Debian: apt-get install postgresql) or set TEST_DATABASE_URL to a server you can create "
    "databases on, e.g. postgresql://postgres:postgres@127.0.0.1:5432/postgres."
)
PSQL_HINT = (
    "psql (PostgreSQL's client) is needed: install it (Debian: apt-get install postgresql-client)."
)
DEBIAN_BINARIES = Path("/usr/lib/postgresql")
"""Debian and Ubuntu install each major version's programs under <major>/bin, off PATH."""


class PostgresUnavailableError(RuntimeError):
    """Neither TEST_DATABASE_URL nor the PostgreSQL server binaries are available."""


def free_port() -> int:
    """A TCP port on loopback that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def find_program(name: str) -> str | None:
    """A PostgreSQL program on PATH, or else in Debian's folder of the newest installed version."""
    found = shutil.which(name)
    if found:
        return found
    candidates = DEBIAN_BINARIES.glob(f"*/bin/{name}")
    newest = max(
        candidates,
        key=lambda path: int(path.parts[-3]) if path.parts[-3].isdigit() else 0,
        default=None,
    )
    return str(newest) if newest else None


def _as_cluster_owner(args: list[str]) -> list[str]:
    if os.geteuid() == 0:
        return ["runuser", "-u", "postgres", "--", *args]
    return args


@dataclass
class Cluster:
    """A PostgreSQL cluster of its own, in a temporary folder: `url` is its `postgres` database."""

    base: Path
    port: int
    pg_ctl: str

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def start(self) -> None:
        """Start the server (again) on its port, and wait until it accepts connections."""
        options = (
            f"-p {self.port} -k {self.base / 'sockets'} -c listen_addresses=127.0.0.1 -c fsync=off"
        )
        log = self.base / "server.log"
        run(
            _as_cluster_owner(
                [
                    self.pg_ctl,
                    "-D",
                    str(self.base / "data"),
                    "-l",
                    str(log),
                    "-o",
                    options,
                    "-w",
                    "start",
                ]
            )
        )

    def stop(self, *, check: bool = True) -> None:
        """Stop the server at once (`immediate`: as a crash would), connections included;
        without `check`, a server already stopped is no error."""
        run(
            _as_cluster_owner(
                [self.pg_ctl, "-D", str(self.base / "data"), "-m", "immediate", "-w", "stop"]
            ),
            check=check,
        )


@contextmanager
def throwaway_cluster() -> Iterator[Cluster]:
    """A new cluster, started; stopped and deleted at the end."""
    initdb, pg_ctl = find_program("initdb"), find_program("pg_ctl")
    if not (initdb and pg_ctl):
        raise PostgresUnavailableError(INSTALL_HINT)
    base = Path(tempfile.mkdtemp(prefix="template-pg-"))
    (base / "sockets").mkdir()
    if os.geteuid() == 0:
        shutil.chown(base, user="postgres")
        shutil.chown(base / "sockets", user="postgres")
    run(
        _as_cluster_owner(
            [initdb, "-D", str(base / "data"), "-A", "trust", "-U", "postgres", "-E", "UTF8"]
        )
    )
    cluster = Cluster(base=base, port=free_port(), pg_ctl=pg_ctl)
    cluster.start()
    try:
        yield cluster
    finally:
        cluster.stop(check=False)
        shutil.rmtree(base, ignore_errors=True)


@contextmanager
def postgres_server() -> Iterator[str]:
    """Yield the URL of a PostgreSQL server: TEST_DATABASE_URL, or a throwaway local cluster."""
    given = os.environ.get("TEST_DATABASE_URL")
    if given:
        yield given
        return
    with throwaway_cluster() as cluster:
        yield cluster.url


def psql(server_url: str, statement: str) -> str:
    """Run one SQL statement with psql on the server's database; its unaligned output."""
    program = find_program("psql")
    if program is None:
        raise PostgresUnavailableError(PSQL_HINT)
    args = [
        program,
        "--no-psqlrc",
        "--quiet",
        "--tuples-only",
        "--no-align",
        "--set=ON_ERROR_STOP=1",
    ]
    return run([*args, "--dbname", server_url, "--command", statement]).stdout.strip()


@contextmanager
def fresh_database(server_url: str, prefix: str = "template_test") -> Iterator[str]:
    """A new, empty database on the server (a random name): its URL; dropped at the end."""
    if not re.fullmatch(r"[a-z_][a-z0-9_]*", prefix):
        raise ValueError(f"database name prefix {prefix!r} is not a plain lowercase identifier")
    name = f"{prefix}_{secrets.token_hex(4)}"
    psql(server_url, f'CREATE DATABASE "{name}"')
    try:
        yield url_for_database(server_url, name)
    finally:
        psql(server_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def url_for_database(server_url: str, name: str) -> str:
    """The server's URL, naming database `name` instead (the query string is kept)."""
    parts = urlsplit(server_url)
    return urlunsplit(parts._replace(path=f"/{name}"))


def database_names(server_url: str) -> set[str]:
    """The databases on the server, templates excepted."""
    return set(
        psql(server_url, "SELECT datname FROM pg_database WHERE NOT datistemplate").splitlines()
    )
