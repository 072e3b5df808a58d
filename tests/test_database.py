"""The `database: postgres` option: the generated service on a real PostgreSQL, never a stand-in.

The server is the `database_url` fixture's (TEST_DATABASE_URL, or a throwaway cluster). The outage
tests start a cluster of their own, which they stop and start again, or pause and resume, under
the running service; so does the test that counts the databases the service's own tests leave
behind. These tests need PostgreSQL: without it they fail, saying what to install, and never skip.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from harness.commands import tool_env
from harness.postgres import (
    Cluster,
    PostgresUnavailableError,
    database_names,
    free_port,
    fresh_database,
    psql,
    throwaway_cluster,
    url_for_database,
)
from harness.serve import serving
from tests.services import GeneratedService, ServiceCache

POSTGRES = {"database": "postgres"}
logger = logging.getLogger(__name__)
JSONAPI = "application/vnd.api+json"
pytestmark = pytest.mark.xdist_group("postgres")  # one worker generates and installs the variant


@pytest.fixture(scope="module")
def service(services: ServiceCache) -> GeneratedService:
    return services.get(**POSTGRES)


def alembic(service: GeneratedService, url: str, *args: str) -> str:
    """`alembic <args>` in the service, on the database at `url` (its DATABASE_URL)."""
    return service.run("uv", "run", "--locked", "alembic", *args, env={"DATABASE_URL": url}).stdout


def test_the_service_passes_its_checks_and_tests_against_postgres(
    service: GeneratedService, cluster: Cluster
) -> None:
    # On a cluster of its own: on a shared server, another worker's service tests (the update
    # that switches a database on) may hold a test database of theirs at this very moment.
    before = database_names(cluster.url)
    service.assert_checks_pass(env={"TEST_DATABASE_URL": cluster.url})
    # The run made a database of its own and dropped it: nothing of it is left on the server.
    leftovers = {name for name in database_names(cluster.url) - before if name.startswith("test_")}
    assert leftovers == set()


def test_the_tests_stop_and_say_how_to_get_a_database_without_one(
    service: GeneratedService,
) -> None:
    result = service.run(
        "uv",
        "run",
        "--locked",
        "pytest",
        "-q",
        "-p",
        "no:cacheprovider",
        "tests/test_widgets.py",
        env={"TEST_DATABASE_URL": ""},
        check=False,
    )
    output = result.stdout + result.stderr
    assert result.returncode == pytest.ExitCode.USAGE_ERROR, output
    assert "docker compose up -d --wait db" in output
    assert (
        "export TEST_DATABASE_URL=postgresql://postgres:postgres@localhost:5432/postgres" in output
    )
    assert "Without Docker, any such server will do" in output
    assert "export TEST_DATABASE_URL=postgresql://USER:PASSWORD@HOST:5432/postgres" in output
    assert " passed" not in output


def test_the_migrations_round_trip_and_match_the_models(
    service: GeneratedService, database_url: str
) -> None:
    with fresh_database(database_url) as url:
        alembic(service, url, "upgrade", "head")
        head = psql(url, "SELECT version_num FROM alembic_version")
        assert psql(url, "SELECT to_regclass('widgets')") == "widgets"

        alembic(service, url, "downgrade", "base")
        assert psql(url, "SELECT to_regclass('widgets')") == ""
        assert psql(url, "SELECT count(*) FROM alembic_version") == "0"

        alembic(service, url, "upgrade", "head")
        assert psql(url, "SELECT version_num FROM alembic_version") == head
        assert "No new upgrade operations detected" in alembic(service, url, "check")


def test_the_migrations_can_be_written_out_as_sql(service: GeneratedService) -> None:
    """`alembic upgrade head --sql` (for a review) needs no database."""
    sql = alembic(service, "postgresql://nobody@127.0.0.1:9/none", "upgrade", "head", "--sql")
    assert "CREATE TABLE widgets" in sql
    assert "CREATE INDEX ix_widgets_account_id_created_at_id" in sql


@pytest.mark.parametrize(
    ("database_env", "message"),
    [
        ({}, "DATABASE_URL is the development database, and ENVIRONMENT=production needs the URL"),
        (
            {"DATABASE_URL": "mysql://app:hunter2-secret@db.internal/orders"},
            "URL scheme should be 'postgresql', 'postgres' or 'postgresql+psycopg'",
        ),
        (
            {
                "DATABASE_URL": "postgresql://app:hunter2-secret@db.internal:5432/orders",
                "DATABASE_PASSWORD": "hunter2-secret",
            },
            "DATABASE_URL has a password and DATABASE_PASSWORD is set: keep one",
        ),
    ],
    ids=["development", "not-postgres", "two-passwords"],
)
def test_production_refuses_to_start_without_a_usable_database_url(
    service: GeneratedService, database_env: dict[str, str], message: str
) -> None:
    env = {
        "ENVIRONMENT": "production",
        "ACCOUNT_TOKEN_KEY": "k" * 32,
        "INTERNAL_TOKEN_SECRET": "s" * 32,
        "HTTP_PORT": str(free_port()),
        **database_env,
    }
    result = service.run(
        "uv", "run", "--locked", "python", "-m", service.package_name, env=env, check=False
    )
    assert result.returncode != 0
    assert message in result.stderr
    assert "hunter2-secret" not in result.stdout + result.stderr


# The outage: the service served as its container serves it, its database stopped and restarted.


@pytest.fixture
def cluster() -> Iterator[Cluster]:
    """A cluster of the test's own, to stop and start: a shared server cannot play an outage."""
    try:
        with throwaway_cluster() as started:
            yield started
    except PostgresUnavailableError as error:
        pytest.fail(str(error), pytrace=False)


@contextmanager
def serve(
    service: GeneratedService, log: Path, **env: str
) -> Iterator[tuple[str, subprocess.Popen[str]]]:
    """`python -m <package>` on a free port, as the image's CMD, its output in `log`: its base URL
    and its process, once /livez answers."""
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    with serving(
        ["uv", "run", "--locked", "python", "-m", service.package_name],
        cwd=service.path,
        env=tool_env({**service.env, **env, "HTTP_PORT": str(port)}),
        base_url=base_url,
        log=log,
    ) as process:
        yield base_url, process


def call(
    url: str, headers: dict[str, str] | None = None, document: dict[str, Any] | None = None
) -> tuple[int, str, str]:
    """(status, content type, body) of a GET, or of a POST of a JSON:API document; (0, "", "")
    when nothing answers."""
    data = None if document is None else json.dumps(document).encode()
    request = urllib.request.Request(url, data=data, headers=headers or {})  # noqa: S310 - loopback
    try:
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 - loopback
            return response.status, response.headers["Content-Type"], response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.headers["Content-Type"], error.read().decode()
    except OSError:
        return 0, "", ""


SPROCKET = {"data": {"type": "widgets", "attributes": {"name": "Sprocket"}}}


def migrated_database(service: GeneratedService, cluster: Cluster) -> str:
    """The URL of a new database on the cluster, migrated to head."""
    psql(cluster.url, "CREATE DATABASE service")
    url = url_for_database(cluster.url, "service")
    alembic(service, url, "upgrade", "head")
    return url


def caller_headers(service: GeneratedService) -> dict[str, str]:
    return {"Authorization": f"Bearer {service.account_token()}", "Content-Type": JSONAPI}


def assert_unavailable(status: int, content_type: str, body: str) -> None:
    assert (status, content_type) == (503, JSONAPI), body
    document = json.loads(body)
    assert [error["status"] for error in document["errors"]] == ["503"]
    for leak in ("Traceback", "sqlalchemy", "psycopg", "OperationalError", "127.0.0.1"):
        assert leak not in body


def test_an_outage_answers_503_and_the_service_recovers_without_a_restart(
    service: GeneratedService, cluster: Cluster, tmp_path: Path
) -> None:
    url = migrated_database(service, cluster)
    headers = caller_headers(service)
    with serve(service, tmp_path / "service.log", DATABASE_URL=url) as (base_url, process):
        status, _, body = call(f"{base_url}/v1/widgets", headers, SPROCKET)
        assert status == 201, body
        assert call(f"{base_url}/readyz")[0] == 200

        cluster.stop()
        assert_unavailable(*call(f"{base_url}/readyz"))
        assert_unavailable(*call(f"{base_url}/v1/widgets", headers))
        assert_unavailable(*call(f"{base_url}/v1/widgets", headers, SPROCKET))
        assert call(f"{base_url}/livez")[0] == 200  # alive: the orchestrator restarts nothing

        cluster.start()
        deadline = time.monotonic() + 15
        while (ready := call(f"{base_url}/readyz"))[0] != 200 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert ready[:2] == (200, JSONAPI), ready
        status, content_type, body = call(f"{base_url}/v1/widgets", headers)
        assert (status, content_type) == (200, JSONAPI), body
        assert [widget["attributes"]["name"] for widget in json.loads(body)["data"]] == ["Sprocket"]
        assert process.poll() is None  # the same process throughout


# The frozen database: the server's kernel accepts connections, but no process answers.

MARGIN_SECONDS = 2.0
"""What a request may take beyond the deadline the settings state: the loaded machine's share."""


@dataclass(frozen=True)
class Answer:
    status: int
    headers: dict[str, str]
    """Named in lower case."""
    body: str
    seconds: float


def timed_get(url: str, headers: dict[str, str] | None = None) -> Answer:
    """A GET, and how long its answer took; status 0 when none came within 30 s."""
    request = urllib.request.Request(url, headers=headers or {})  # noqa: S310 - loopback
    started = time.monotonic()
    try:
        with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310 - loopback
            status, answer_headers, body = response.status, response.headers, response.read()
    except urllib.error.HTTPError as error:
        status, answer_headers, body = error.code, error.headers, error.read()
    except OSError:
        return Answer(0, {}, "", time.monotonic() - started)
    named = {name.lower(): value for name, value in answer_headers.items()}
    return Answer(status, named, body.decode(), time.monotonic() - started)


def cluster_processes(cluster: Cluster) -> list[int]:
    """The postmaster, then every process it started (the backends and the server's workers)."""
    postmaster = int((cluster.base / "data" / "postmaster.pid").read_text().split()[0])
    children = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            # pid (command) state parent-pid ...: the command may hold spaces and parentheses.
            parent = int(stat.read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue  # a process that ended meanwhile
        if parent == postmaster:
            children.append(int(stat.parent.name))
    return [postmaster, *children]


@contextmanager
def frozen(cluster: Cluster) -> Iterator[None]:
    """Every process of the cluster paused (SIGSTOP), as a network partition or a stuck failover
    looks to the service; always resumed (SIGCONT), whatever the test did meanwhile."""
    paused: list[int] = []
    try:
        for pid in cluster_processes(cluster):
            # A backend may end meanwhile: one of a connection the service closed.
            with suppress(ProcessLookupError):
                os.kill(pid, signal.SIGSTOP)
                paused.append(pid)
        yield
    finally:
        for pid in reversed(paused):  # the postmaster last: it reaps the backends that ended
            with suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)


def test_a_frozen_database_answers_503_in_time_and_the_service_recovers(
    service: GeneratedService, cluster: Cluster, tmp_path: Path
) -> None:
    url = migrated_database(service, cluster)
    headers = caller_headers(service)
    bounds = (
        f"from {service.package_name}.settings import Settings\n"
        f"from {service.package_name}.db.engine import READINESS_TIMEOUT_SECONDS\n"
        "print(Settings(_env_file=None).database_timeout, READINESS_TIMEOUT_SECONDS)"
    )
    deadline, readiness_deadline = map(
        float, service.run("uv", "run", "--locked", "python", "-c", bounds).stdout.split()
    )
    with serve(service, tmp_path / "service.log", DATABASE_URL=url) as (base_url, process):
        status, _, body = call(f"{base_url}/v1/widgets", headers, SPROCKET)
        assert status == 201, body
        widget_url = f"{base_url}/v1/widgets/{json.loads(body)['data']['id']}"
        readyz_url = f"{base_url}/readyz"
        urls = [f"{base_url}/v1/widgets", widget_url] * 10
        with ThreadPoolExecutor(len(urls)) as requests:
            # Concurrent requests leave several connections in the pool, as traffic does.
            warm = requests.map(lambda url: timed_get(url, headers), urls)
            assert {answer.status for answer in warm} == {200}

            with frozen(cluster):
                answers = list(requests.map(lambda url: timed_get(url, headers), urls))
                readiness = timed_get(readyz_url)
                liveness = timed_get(f"{base_url}/livez")

        logger.info(
            "frozen database, DATABASE_TIMEOUT=%s s: %d concurrent requests answered in %s s; "
            "/readyz in %.2f s (its timeout %s s)",
            deadline,
            len(answers),
            sorted(round(answer.seconds, 2) for answer in answers),
            readiness.seconds,
            readiness_deadline,
        )
        for answer in [*answers, readiness]:
            assert_unavailable(answer.status, answer.headers.get("content-type", ""), answer.body)
        for answer in answers:
            assert answer.headers["retry-after"].isdigit()
            assert answer.seconds <= deadline + MARGIN_SECONDS, answer
        assert readiness.seconds <= readiness_deadline + MARGIN_SECONDS, readiness
        assert liveness.status == 200  # alive: the orchestrator restarts nothing

        give_up = time.monotonic() + 15
        while (ready := timed_get(readyz_url)).status != 200 and time.monotonic() < give_up:
            time.sleep(0.2)
        assert ready.status == 200, ready
        recovered = timed_get(widget_url, headers)
        assert recovered.status == 200, recovered
        assert json.loads(recovered.body)["data"]["attributes"]["name"] == "Sprocket"
        assert process.poll() is None  # the same process throughout
