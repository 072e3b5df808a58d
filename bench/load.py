"""Throughput, CPU, fixed-rate latency and memory of the generated service, against its anchors.

Five servers, each the service's own interpreter and uvicorn with the same flags, pinned to CPU 0
(`taskset -c 0`), while the load runs on CPU 1, on loopback only: E the generated service, B the
same API hand-written the idiomatic FastAPI way (bench/handwritten_app.py, its anchor), A bare
FastAPI returning E's recorded documents (bench/bare_app.py, the limit), C the core on A's
handlers and D a minimal request-id + log-line layer on them (the floor under the core). Each must
serve the same JSON as E (checked before any load). wrk's rounds alternate the servers' order, so
noise from the rest of the machine lands on each, and every ratio is the median of per-round
ratios. Then httperf, an open-loop generator, sends each endpoint at a fixed rate, half of E's own
capacity, to E and B in turn: its p99 counts from each request's scheduled send, so a pause in the
server shows in full. Requests carry a valid account token (minted from the service's own
settings), and the request logs stay on (sent to /dev/null). Every run is bounded by its duration;
every wait by a timeout.

The `database: postgres` variant (measure_postgres_load) runs on a local PostgreSQL the bench
starts as the tests do (harness.postgres), migrated with the service's own Alembic, and takes turns
with bench/bare_sql_app.py, bare FastAPI and SQLAlchemy making the same queries on the same
database: the figures show what the template adds on top of the database.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import httpx

from bench.bare_app import MINIMAL_LAYER_VARIABLE, PAYLOADS_VARIABLE, WITH_CORE_VARIABLE
from bench.bare_sql_app import (
    COLLECTION_VARIABLE,
    DATABASE_URL_VARIABLE,
    POOL_SIZE_VARIABLE,
    READER_VARIABLE,
    WRITER_VARIABLE,
)
from bench.counters import count_instructions, perf_works
from bench.profiling import profile_server_under_load
from bench.stats import Figure, NotMeasuredError, Report, Summary, Target
from bench.workspace import Workspace, service_modules
from harness.commands import run, tool_env
from harness.postgres import (
    PostgresUnavailableError,
    free_port,
    fresh_database,
    postgres_server,
)

BENCH_DIR = Path(__file__).resolve().parent
WRK_DIR = BENCH_DIR / "wrk"
CORE_BUDGET = 0.90
"""DESIGN.md: the core on the path services use serves at least 0.90 of bare FastAPI's requests,"""
FLOOR_POINTS = 0.03
"""... or comes within 3 points of the minimal request-logging layer (no layer costs less)."""
P99_TARGET = Target("<=", 1.5, on="ratio")
"""E's p99 at a fixed rate (half its capacity) at most 1.5x B's at the same rate."""
FIXED_RATE_SHARE = 0.5
FIXED_RATE_PASSES = 2
RSS_TARGET = Target("<=", 1.25, on="ratio")
"""The service's memory before load at most 1.25x bare FastAPI's."""
SERVER_NAMES = {
    "service": "E the generated service",
    "handwritten": "B hand-written idiomatic FastAPI",
    "bare": "A bare FastAPI",
    "core": "C the core on A's handlers",
    "minimal": "D a minimal request-id + log-line layer on A",
}
COMPARISONS = (
    ("service", "handwritten"),
    ("service", "bare"),
    ("handwritten", "bare"),
    ("core", "bare"),
    ("minimal", "bare"),
)
"""(server, baseline): E/B is the service's goal, E/A and B/A show the limit, C/A the core's."""
JSONAPI = "application/vnd.api+json"
SEEDED_WIDGETS = 50
PAGE_QUERY = "?page%5Bsize%5D=50"
"""A page of 50 widgets (`page[size]=50`, percent-encoded so every URL parser takes it)."""
CREATE_BODY = {
    "data": {
        "type": "widgets",
        "attributes": {"name": "bench widget", "description": "Created by the load test."},
    }
}
SERVER_FLAGS = ["--host", "127.0.0.1", "--no-access-log", "--log-level", "warning"]
"""The same uvicorn flags for both servers; one worker (uvicorn's default, a single process)."""
SERVICE_CPU, LOAD_CPU = "0", "1"
STARTUP_TIMEOUT_S = 60.0
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
SERVICE_ENVIRONMENT = {
    # A deployed configuration with strong secrets, so nothing runs in a development mode.
    "ENVIRONMENT": "production",
    "LOG_LEVEL": "INFO",
    "ACCOUNT_TOKEN_KEY": "bench-account-token-key-0123456789abcdef0123456789",
    "INTERNAL_TOKEN_SECRET": "bench-internal-token-secret-0123456789abcdef012345",
}
MINT_SCRIPT = """
import sys
from {package}.app import create_app
from {package}.settings import Settings
from {core}.testing import make_account_token
settings = Settings(_env_file=None)
print(create_app(settings).url_path_for("list_widgets"))
for account in sys.argv[1:]:
    print(make_account_token(
        settings.core_settings(), account_id=account, tier="enterprise", expires_in=3600
    ))
"""
"""Run in the service's venv: where the widgets are (the API's prefix is the template's choice),
then tokens the service's own settings accept (tier enterprise: no limit on widgets)."""


READER_ACCOUNT, WRITER_ACCOUNT = "bench-a", "bench-b"


@dataclass(frozen=True)
class Endpoint:
    name: str
    method: str
    payload: str
    """The key of its recorded response in the bare app's payload file."""
    account: str
    """Reads use one account holding the seeded widgets; creates another, so the page stays 50."""


SERVICE_TARGET = Target(">=", 1.0, "ratio", stretch=1.2)
"""DESIGN.md: the service's throughput at least the hand-written API's, on every endpoint."""
ENDPOINTS = (
    Endpoint("GET one widget", "GET", "one", "reader"),
    Endpoint("GET a page of 50 widgets", "GET", "page", "reader"),
    Endpoint("POST (create) a widget", "POST", "created", "writer"),
)


@dataclass
class Server:
    """A uvicorn process pinned to the server CPU; its pid is uvicorn's own (taskset execs)."""

    name: str
    process: subprocess.Popen[bytes]
    port: int
    log: Path

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def memory(self) -> dict[str, int]:
        """VmRSS and VmHWM (peak RSS) in bytes, from /proc/<pid>/status."""
        values: dict[str, int] = {}
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            key, _, rest = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                values[key] = int(rest.split()[0]) * 1024
        return values

    def cpu_seconds(self) -> float:
        """User + system CPU time the process has used, from /proc/<pid>/stat."""
        fields = Path(f"/proc/{self.process.pid}/stat").read_text().rpartition(")")[2].split()
        return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)


@dataclass(frozen=True)
class ServerSpec:
    """What to serve: `uvicorn APP --factory` run from `cwd` with `env`."""

    name: str
    app: str
    cwd: Path
    env: Mapping[str, str]


def start_server(spec: ServerSpec, venv: Path, log_dir: Path) -> Server:
    """Start the venv's uvicorn on the server CPU and wait until it accepts connections."""
    name, port = spec.name, free_port()
    log = log_dir / f"{name}.stderr.log"
    args = ["taskset", "-c", SERVICE_CPU, str(venv / "bin" / "uvicorn"), spec.app, "--factory"]
    args += [*SERVER_FLAGS, "--port", str(port)]
    with log.open("wb") as stderr:
        process = subprocess.Popen(  # noqa: S603 - fixed arguments
            args, cwd=spec.cwd, env=tool_env(spec.env), stdout=subprocess.DEVNULL, stderr=stderr
        )
    server = Server(name, process, port, log)
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(
                f"{name} exited at start-up ({process.returncode}):\n{log.read_text()}"
            )
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return server
        except OSError:
            time.sleep(0.1)
    server.stop()
    raise RuntimeError(f"{name} did not accept connections within {STARTUP_TIMEOUT_S:.0f} s")


@contextmanager
def running(server: Server) -> Iterator[Server]:
    try:
        yield server
    finally:
        server.stop()


def ensure_tool(name: str) -> str | None:
    """The Debian package `name`'s command, installed with apt-get when missing and running as
    root; None when it cannot be had."""
    found = shutil.which(name)
    if found or os.geteuid() != 0 or shutil.which("apt-get") is None:
        return found
    print(f"{name} is missing: installing it with apt-get (running as root)", flush=True)
    env = {"DEBIAN_FRONTEND": "noninteractive"}
    if run(["apt-get", "install", "-y", "-qq", name], env=env, check=False).returncode != 0:
        run(["apt-get", "update", "-qq"], env=env, timeout=300, check=False)
        run(["apt-get", "install", "-y", "-qq", name], env=env, timeout=300, check=False)
    return shutil.which(name)


def ensure_wrk() -> str:
    """wrk's path, or a clear error: the load sections need it."""
    found = ensure_tool("wrk")
    if not found:
        raise RuntimeError(
            "wrk is needed for the load test: install it with `sudo apt-get install -y wrk` "
            "(Debian/Ubuntu)."
        )
    return found


@dataclass(frozen=True)
class WrkResult:
    requests: int
    seconds: float
    p50_ms: float
    p99_ms: float
    server_cpu_seconds: float = 0.0
    """CPU the server used during the run."""
    server_instructions: int = 0
    """User-space instructions the server ran during the run (0 without perf)."""

    @property
    def rps(self) -> float:
        return self.requests / self.seconds

    @property
    def cpu_us_per_request(self) -> float:
        return self.server_cpu_seconds / self.requests * 1e6

    @property
    def kilo_instructions_per_request(self) -> float:
        return self.server_instructions / self.requests / 1000


RESULT_LINE = re.compile(r"^BENCH_RESULT (.*)$", re.MULTILINE)


class LoadGenerator:
    """wrk on the load CPU, one thread, with the token and JSON:API headers of an endpoint."""

    def __init__(self, wrk: str, connections: int, tokens: Mapping[str, str]) -> None:
        self.wrk = wrk
        self.connections = connections
        self.tokens = tokens

    def command(
        self, endpoint: Endpoint, url: str, seconds: int
    ) -> tuple[list[str], dict[str, str]]:
        script = WRK_DIR / ("post.lua" if endpoint.method == "POST" else "get.lua")
        args = ["taskset", "-c", LOAD_CPU, self.wrk, "-t1", f"-c{self.connections}"]
        args += [f"-d{seconds}s", "--timeout", "10s", "-s", str(script)]
        args += [
            "-H",
            f"Authorization: Bearer {self.tokens[endpoint.account]}",
            "-H",
            f"Accept: {JSONAPI}",
        ]
        return [*args, url], {"BENCH_WRK_BODY": json.dumps(CREATE_BODY)}

    def run(self, endpoint: Endpoint, url: str, seconds: int) -> WrkResult:
        args, env = self.command(endpoint, url, seconds)
        output = run(args, env=env, timeout=seconds + 60).stdout
        match = RESULT_LINE.search(output)
        if match is None:
            raise RuntimeError(f"wrk printed no result line:\n{output}")
        fields = {key: int(value) for key, value in re.findall(r"(\w+)=(\d+)", match.group(1))}
        errors = {key: fields[key] for key in ("connect", "read", "write", "status", "timeout")}
        if any(errors.values()) or fields["requests"] == 0:
            raise RuntimeError(f"{endpoint.name} at {url}: wrk counted errors {errors}:\n{output}")
        return WrkResult(
            requests=fields["requests"],
            seconds=fields["duration_us"] / 1e6,
            p50_ms=fields["p50_us"] / 1000,
            p99_ms=fields["p99_us"] / 1000,
        )


class RssSampler:
    """Polls VmRSS while a round runs: its maximum is the round's peak memory."""

    def __init__(self, server: Server, interval: float = 0.05) -> None:
        self.server = server
        self.interval = interval
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)

    def _poll(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self.server.memory().get("VmRSS", 0))
            self._stop.wait(self.interval)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


@dataclass(frozen=True)
class Rig:
    """The two servers, the paths of the endpoints on them, and the load generator."""

    servers: dict[str, Server]
    paths: dict[str, str]
    generator: LoadGenerator
    perf: bool
    """Whether `perf stat` can count the servers' instructions here."""

    def load(self, endpoint: Endpoint, server: Server, seconds: int) -> WrkResult:
        """One wrk run against one server, with the CPU time and instructions it spent on it."""
        before = server.cpu_seconds()
        with count_instructions(server.process.pid, enabled=self.perf) as instructions:
            result = self.generator.run(endpoint, server.url(self.paths[endpoint.payload]), seconds)
        return replace(
            result,
            server_cpu_seconds=server.cpu_seconds() - before,
            server_instructions=instructions.count,
        )


def measure_load(workspace: Workspace, report: Report) -> None:
    """Seed E, record its documents, start B, A, C and D from them, check each serves the same
    JSON, then alternate wrk rounds per endpoint, then the fixed-rate rounds."""
    options = workspace.options
    wrk, service, package, core, env, collection, tokens, logs = _reference(workspace, "load")
    venv = service / ".venv"
    service_app = f"{package}.app:create_app"
    with ExitStack() as stack:
        app = stack.enter_context(
            running(start_server(ServerSpec("service", service_app, service, env), venv, logs))
        )
        paths, payloads = _seed(app, collection, tokens)
        # The other apps run from a folder of their own, so nothing else of bench/ is importable.
        apps_dir = logs / "apps"
        apps_dir.mkdir()
        for name in ("bare_app.py", "handwritten_app.py"):
            shutil.copy2(BENCH_DIR / name, apps_dir / name)
        (apps_dir / "payloads.json").write_text(json.dumps(payloads))
        apps_env = {**env, PAYLOADS_VARIABLE: str(apps_dir / "payloads.json")}
        specs = {
            "handwritten": ("handwritten_app:create_app", apps_env),
            "bare": ("bare_app:create_app", apps_env),
            "core": ("bare_app:create_app", {**apps_env, WITH_CORE_VARIABLE: f"{package}:{core}"}),
            "minimal": ("bare_app:create_app", {**apps_env, MINIMAL_LAYER_VARIABLE: "1"}),
        }
        servers = {"service": app}
        for name, (factory, server_env) in specs.items():
            spec = ServerSpec(name, factory, apps_dir, server_env)
            servers[name] = stack.enter_context(running(start_server(spec, venv, logs)))
            _check_same_json(servers[name], app, paths, payloads, tokens)
        generator = LoadGenerator(wrk, options.connections, tokens)
        rig = Rig(servers, paths, generator, perf=_servers_counted(report, "load"))
        alternation = _alternate(workspace, rig)
        final = {name: server.memory() for name, server in servers.items()}
        _report(report, alternation, final, options.connections, options.load_seconds)
        _fixed_rate(workspace, report, rig, alternation)
        _maybe_profile(
            workspace, report, rig, alternation, {core: "ours: core/", package: "ours: template/"}
        )


def _reference(
    workspace: Workspace, label: str
) -> tuple[str, Path, str, str, dict[str, str], str, dict[str, str], Path]:
    """wrk, the reference service, its package and core modules, its environment, the widgets'
    path, the tokens, and a fresh folder for the servers' logs."""
    wrk = ensure_wrk()
    service = workspace.reference_service()
    package, core = service_modules(service)
    env = {**workspace.env, **SERVICE_ENVIRONMENT}
    collection, tokens = _mint(service, package, core, env)
    logs = workspace.fresh(f"{label}-logs")
    logs.mkdir(parents=True)
    return wrk, service, package, core, env, collection, tokens, logs


def _mint(
    service: Path, package: str, core: str, env: Mapping[str, str]
) -> tuple[str, dict[str, str]]:
    """The path of the widgets, and a token for the reader's and the writer's account."""
    script = MINT_SCRIPT.format(package=package, core=core)
    python = str(service / ".venv" / "bin" / "python")
    minted = run(
        [python, "-c", script, READER_ACCOUNT, WRITER_ACCOUNT], cwd=service, env=env
    ).stdout.split()
    return minted[0], {"reader": minted[1], "writer": minted[2]}


def _servers_counted(report: Report, section: str) -> bool:
    """Whether perf counts the servers' instructions; if not, the report says so."""
    if perf_works():
        return True
    report.not_measured.append(
        f"{section}: the servers' instructions per request: `perf stat` does not work here, and "
        "callgrind cannot attach to a running server"
    )
    return False


def _headers(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}", "Accept": JSONAPI, "Content-Type": JSONAPI}


def _seed(
    server: Server, collection: str, tokens: Mapping[str, str]
) -> tuple[dict[str, str], dict[str, Any]]:
    """POST the widgets the GETs read; record each endpoint's response body for the bare app."""
    with httpx.Client(base_url=server.url(""), timeout=10) as client:
        created: list[dict[str, Any]] = []
        for number in range(SEEDED_WIDGETS):
            body = {"data": {"type": "widgets", "attributes": {"name": f"widget {number:02d}"}}}
            response = client.post(collection, json=body, headers=_headers(tokens["reader"]))
            _expect(response, 201)
            created.append(response.json())
        one_path = f"{collection}/{created[0]['data']['id']}"
        one = client.get(one_path, headers=_headers(tokens["reader"]))
        page = client.get(collection + PAGE_QUERY, headers=_headers(tokens["reader"]))
        new = client.post(collection, json=CREATE_BODY, headers=_headers(tokens["writer"]))
        _expect(one, 200)
        _expect(page, 200)
        _expect(new, 201)
        if len(page.json()["data"]) != SEEDED_WIDGETS:
            raise RuntimeError(
                f"the page holds {len(page.json()['data'])} widgets, not {SEEDED_WIDGETS}"
            )
    paths = {"one": one_path, "page": collection + PAGE_QUERY, "created": collection}
    payloads = {"one": one.json(), "page": page.json(), "created": new.json()}
    return paths, {**payloads, "collection": collection}


def _expect(response: httpx.Response, status: int) -> None:
    if response.status_code != status:
        raise RuntimeError(
            f"{response.request.method} {response.request.url} answered {response.status_code}, "
            f"not {status}: {response.text[:2000]}"
        )


_VARYING = re.compile(
    r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}|\d{4}-\d\d-\d\dT[^\"]*"
)
"""A new widget's id and times: each server makes its own."""


def _check_same_json(
    server: Server,
    service: Server,
    paths: Mapping[str, str],
    payloads: Mapping[str, Any],
    tokens: Mapping[str, str],
) -> None:
    """Each server must serve the service's documents (links name its own address, a created
    widget its own id and times), or the comparison means nothing."""
    with httpx.Client(base_url=server.url(""), timeout=10) as client:
        responses = {
            "one": (client.get(paths["one"], headers=_headers(tokens["reader"])), 200),
            "page": (client.get(paths["page"], headers=_headers(tokens["reader"])), 200),
            "created": (
                client.post(paths["created"], json=CREATE_BODY, headers=_headers(tokens["writer"])),
                201,
            ),
        }
    for name, (response, status) in responses.items():
        _expect(response, status)
        ours = json.dumps(response.json()).replace(server.url(""), service.url(""))
        theirs = json.dumps(payloads[name])
        if name == "created":
            ours, theirs = _VARYING.sub("?", ours), _VARYING.sub("?", theirs)
        if ours != theirs:
            raise RuntimeError(
                f"{server.name}'s {name!r} document differs from the service's:\n{ours}\n{theirs}"
            )


@dataclass
class Alternation:
    """Rounds in which the servers take turns, and their memory before, during and after."""

    results: dict[str, dict[str, list[WrkResult]]]
    """endpoint name -> server name -> one result per round."""
    peak_rss: dict[str, list[int]]
    after_rss: dict[str, list[int]]
    idle_rss: dict[str, int]


def _alternate(workspace: Workspace, rig: Rig) -> Alternation:
    """Per endpoint: a warm-up of each server, then rounds alternating which server goes first."""
    options = workspace.options
    servers = rig.servers
    idle = {name: server.memory()["VmRSS"] for name, server in servers.items()}
    results: dict[str, dict[str, list[WrkResult]]] = {}
    peak: dict[str, list[int]] = {name: [] for name in servers}
    after: dict[str, list[int]] = {name: [] for name in servers}
    for endpoint in ENDPOINTS:
        results[endpoint.name] = {name: [] for name in servers}
        for server in servers.values():
            rig.load(endpoint, server, options.load_warmup_seconds)
        for round_number in range(options.load_rounds):
            order = list(servers) if round_number % 2 == 0 else list(reversed(list(servers)))
            for name in order:
                server = servers[name]
                with RssSampler(server) as sampler:
                    result = rig.load(endpoint, server, options.load_seconds)
                results[endpoint.name][name].append(result)
                peak[name].append(sampler.peak)
                time.sleep(0.2)
                after[name].append(server.memory()["VmRSS"])
    return Alternation(results, peak, after, idle)


def _load_together(
    rig: Rig, endpoint: Endpoint, first: Server, second: Server, seconds: int
) -> tuple[WrkResult, WrkResult]:
    """Both servers under load at once, sharing the server CPU (two wrk on the load CPU).

    The kernel gives two busy processes on one CPU equal time, so the ratio of their request
    rates is the ratio of their costs per request, measured under the same conditions: a
    machine that speeds up or slows down moves both alike, where alternating rounds only pair
    neighbours in time.
    """
    results: dict[int, WrkResult] = {}

    def drive(index: int, server: Server) -> None:
        results[index] = rig.load(endpoint, server, seconds)

    threads = [
        threading.Thread(target=drive, args=(index, server))
        for index, server in enumerate((first, second))
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=seconds + 120)
    if len(results) != len(threads):
        raise RuntimeError(f"{endpoint.name}: a load run sharing the CPU did not finish")
    return results[0], results[1]


MIB = 1 / (1024 * 1024)


def _throughput_figure(
    name: str,
    ours: list[WrkResult],
    base: list[WrkResult],
    baseline_name: str,
    note: str,
) -> Figure:
    """Requests per second beside the baseline's, by the per-round ratio (no target yet)."""
    return Figure(
        section="load",
        name=name,
        unit="req/s",
        value=Summary.of([result.rps for result in ours]),
        baseline_name=baseline_name,
        baseline=Summary.of([result.rps for result in base]),
        ratio=Summary.of([a.rps / b.rps for a, b in zip(ours, base, strict=True)]),
        note=note,
    )


def _report(
    report: Report,
    alternation: Alternation,
    final: dict[str, dict[str, int]],
    connections: int,
    seconds: int,
) -> None:
    """Per endpoint, each comparison's throughput and CPU per request; then the memory."""
    for endpoint in ENDPOINTS:
        rounds = alternation.results[endpoint.name]
        ratios = {
            (ours, base): _throughput_figure(
                f"{endpoint.name}, {SERVER_NAMES[ours]}, req/s",
                rounds[ours],
                rounds[base],
                SERVER_NAMES[base],
                f"{connections} connections, {len(rounds[ours])} x {seconds} s",
            )
            for ours, base in COMPARISONS
        }
        floor = ratios["minimal", "bare"].ratio_median() or 0.0
        targets = {
            ("service", "handwritten"): SERVICE_TARGET,
            ("core", "bare"): Target(
                ">=",
                CORE_BUDGET,
                on="ratio",
                alternative=floor - FLOOR_POINTS,
                alternative_text=f"D's {floor:.3f} less 3 points",
            ),
        }
        for key, figure in ratios.items():
            report.figures.append(replace(figure, target=targets.get(key)))
        for ours, base in COMPARISONS:
            report.figures += _cost_figures(
                f"{endpoint.name}, {SERVER_NAMES[ours]}",
                rounds[ours],
                rounds[base],
                SERVER_NAMES[base],
            )
    report.figures += _memory_figures(
        alternation,
        "bare FastAPI",
        f"VmHWM at the end: {final['service']['VmHWM'] * MIB:.1f} MiB, bare "
        f"{final['bare']['VmHWM'] * MIB:.1f} MiB; every POST keeps a widget in the in-memory "
        "storage",
    )


def _cost_figures(
    prefix: str, ours: list[WrkResult], base: list[WrkResult], baseline_name: str
) -> list[Figure]:
    """Server CPU per request, and instructions too where perf counted them for every run."""
    metrics = [("server CPU per request", "cpu_us_per_request", "us")]
    if all(result.server_instructions for result in [*ours, *base]):
        metrics.append(("server instructions per request", "kilo_instructions_per_request", "k"))
    return [
        Figure(
            section="load",
            name=f"{prefix}, {label}",
            unit=unit,
            value=Summary.of([getattr(result, attribute) for result in ours]),
            baseline_name=baseline_name,
            baseline=Summary.of([getattr(result, attribute) for result in base]),
        )
        for label, attribute, unit in metrics
    ]


HISTOGRAM_LINE = re.compile(r"^\s+(\d+(?:\.\d+)?)\s+(\d+)\s*$")


def httperf_p99_ms(output: str) -> float:
    """The 99th percentile of httperf's connection lifetimes (one request per connection), from
    its histogram of 1 ms bins (`-v -v`): the upper edge of the bin that reaches 99 %."""
    if not re.search(r"^Errors: total 0 ", output, re.MULTILINE) or re.search(
        r"\b[1345]xx=[1-9]", output
    ):
        raise RuntimeError(f"httperf counted errors or non-2xx replies:\n{output}")
    _, _, histogram = output.partition("Connection lifetime histogram (time in ms):")
    bins = []
    for line in histogram.splitlines()[1:]:
        match = HISTOGRAM_LINE.match(line)
        if match is None and line.strip() != ":":
            break
        if match is not None:
            bins.append((float(match.group(1)) + 0.5, int(match.group(2))))
    total, seen = sum(count for _, count in bins), 0
    for upper, count in bins:
        seen += count
        if seen >= 0.99 * total:
            return upper
    raise RuntimeError(f"httperf printed no histogram:\n{output}")


def _fixed_rate(workspace: Workspace, report: Report, rig: Rig, alternation: Alternation) -> None:
    """E's and B's p99 at the same fixed rate, half of E's capacity, per endpoint (open loop)."""
    httperf = ensure_tool("httperf")
    if httperf is None:
        report.not_measured.append(
            "load: p99 at a fixed rate: needs httperf, an open-loop load generator "
            "(`apt-get install httperf`)"
        )
        return
    seconds = workspace.options.load_seconds
    sessions = workspace.fresh("httperf")
    sessions.mkdir(parents=True)
    for endpoint in ENDPOINTS:
        capacity = Summary.of([r.rps for r in alternation.results[endpoint.name]["service"]])
        rate = max(1, round(capacity.median * FIXED_RATE_SHARE))
        session = sessions / f"{endpoint.payload}.txt"
        body = json.dumps(json.dumps(CREATE_BODY, separators=(",", ":")))
        extra = f" method=POST contents={body}" if endpoint.method == "POST" else ""
        session.write_text(f"{rig.paths[endpoint.payload]}{extra}\n")
        token = rig.generator.tokens[endpoint.account]
        p99: dict[str, list[float]] = {"service": [], "handwritten": []}
        for _ in range(FIXED_RATE_PASSES):
            for name, passes in p99.items():
                server = rig.servers[name]
                args = ["taskset", "-c", LOAD_CPU, httperf, "--hog", "-v", "-v", "--timeout", "10"]
                args += ["--server", "127.0.0.1", "--port", str(server.port), "--rate", str(rate)]
                args += ["--wsesslog", f"{rate * seconds},0,{session}"]
                args += [
                    "--add-header",
                    f"Authorization: Bearer {token}\\nAccept: {JSONAPI}\\n"
                    f"Content-Type: {JSONAPI}\\n",
                ]
                output = run(args, timeout=seconds + 60).stdout
                passes.append(httperf_p99_ms(output))
        report.figures.append(
            Figure(
                section="load",
                name=f"{endpoint.name}, p99 at a fixed rate: {SERVER_NAMES['service']}",
                unit="ms",
                value=Summary.of(p99["service"]),
                baseline_name=SERVER_NAMES["handwritten"],
                baseline=Summary.of(p99["handwritten"]),
                ratio=Summary.of(
                    [e / b for e, b in zip(p99["service"], p99["handwritten"], strict=True)]
                ),
                target=P99_TARGET,
                note=f"httperf, open loop, {rate} req/s (half E's capacity), one request per "
                f"connection, {FIXED_RATE_PASSES} passes x {seconds} s; 1 ms bins",
            )
        )


def _memory_figures(alternation: Alternation, baseline_name: str, after_note: str) -> list[Figure]:
    """RSS before, during and after the load, the service's beside the baseline's."""
    figures = (
        (
            "RSS before load (seeded)",
            [alternation.idle_rss["service"]],
            [alternation.idle_rss["bare"]],
            "",
        ),
        (
            "RSS peak under load, per round",
            alternation.peak_rss["service"],
            alternation.peak_rss["bare"],
            "",
        ),
        (
            "RSS after each round",
            alternation.after_rss["service"],
            alternation.after_rss["bare"],
            after_note,
        ),
    )
    return [
        Figure(
            section="memory",
            name=name,
            unit="MiB",
            value=Summary.of([value * MIB for value in ours]),
            baseline_name=baseline_name,
            baseline=Summary.of([value * MIB for value in base]),
            target=RSS_TARGET if name.startswith("RSS before") else None,
            note=note,
        )
        for name, ours, base, note in figures
    ]


def _maybe_profile(
    workspace: Workspace,
    report: Report,
    rig: Rig,
    alternation: Alternation,
    ours: dict[str, str],
) -> None:
    """Sample E and B with py-spy under the load of each endpoint where E missed its goal."""
    options = workspace.options
    for endpoint in ENDPOINTS:
        rounds = alternation.results[endpoint.name]
        ratio = Summary.of(
            [e.rps / b.rps for e, b in zip(rounds["service"], rounds["handwritten"], strict=True)]
        ).median
        if not options.should_profile(not SERVICE_TARGET.met_by(ratio)):
            continue

        def drive(name: str, seconds: int, endpoint: Endpoint = endpoint) -> float:
            return rig.load(endpoint, rig.servers[name], seconds).cpu_us_per_request

        lines = profile_server_under_load(
            {name: rig.servers[name].process.pid for name in ("service", "handwritten")},
            drive,
            seconds=max(options.load_seconds * 2, 4),
            output_dir=workspace.fresh("profile"),
            ours=ours,
        )
        report.add_note(f"Profile: {endpoint.name} under load (py-spy, E/B {ratio:.2f})", lines)


def measure_postgres_load(workspace: Workspace, report: Report) -> None:
    """The `database: postgres` service on a real local PostgreSQL, against bare FastAPI and
    SQLAlchemy making the same queries on the same database (bench/bare_sql_app.py)."""
    options = workspace.options
    wrk = ensure_wrk()
    service = workspace.reference_service("postgres")
    package, core = service_modules(service)
    venv = service / ".venv"
    logs = workspace.fresh("load-postgres-logs")
    logs.mkdir(parents=True)
    with ExitStack() as stack:
        try:
            server_url = stack.enter_context(postgres_server())
        except PostgresUnavailableError as error:
            raise NotMeasuredError(str(error)) from None
        database_url = stack.enter_context(fresh_database(server_url, "bench"))
        pool = str(options.connections)  # a connection per load connection, for both servers
        env = {
            **workspace.env,
            **SERVICE_ENVIRONMENT,
            "DATABASE_URL": database_url,
            "DATABASE_POOL_SIZE": pool,
        }
        run([str(venv / "bin" / "alembic"), "upgrade", "head"], cwd=service, env=env)
        collection, tokens = _mint(service, package, core, env)
        spec = ServerSpec("service-postgres", f"{package}.app:create_app", service, env)
        app = stack.enter_context(running(start_server(spec, venv, logs)))
        paths, payloads = _seed(app, collection, tokens)
        bare_dir = logs / "bare-sql"
        bare_dir.mkdir()
        shutil.copy2(BENCH_DIR / "bare_sql_app.py", bare_dir / "bare_sql_app.py")
        bare_env = {
            **env,
            DATABASE_URL_VARIABLE: database_url.replace(
                "postgresql://", "postgresql+psycopg://", 1
            ),
            COLLECTION_VARIABLE: collection,
            POOL_SIZE_VARIABLE: pool,
            READER_VARIABLE: READER_ACCOUNT,
            WRITER_VARIABLE: WRITER_ACCOUNT,
        }
        bare_spec = ServerSpec("bare-sql", "bare_sql_app:create_app", bare_dir, bare_env)
        bare = stack.enter_context(running(start_server(bare_spec, venv, logs)))
        _check_same_widgets(bare, paths, payloads)
        generator = LoadGenerator(wrk, options.connections, tokens)
        servers = {"service": app, "bare": bare}
        rig = Rig(servers, paths, generator, perf=_servers_counted(report, "load-postgres"))
        alternation = _alternate(workspace, rig)
    _report_postgres(report, alternation, options.connections, options.load_seconds)


def _check_same_widgets(
    bare: Server, paths: Mapping[str, str], payloads: Mapping[str, Any]
) -> None:
    """The SQL baseline reads the same rows: the same widgets, in the same order."""
    with httpx.Client(base_url=bare.url(""), timeout=10) as client:
        one = client.get(paths["one"])
        page = client.get(paths["page"])
    _expect(one, 200)
    _expect(page, 200)
    if one.json()["data"]["id"] != payloads["one"]["data"]["id"] or [
        widget["id"] for widget in page.json()["data"]
    ] != [widget["id"] for widget in payloads["page"]["data"]]:
        raise RuntimeError("bare FastAPI + SQLAlchemy reads other widgets than the service")


POSTGRES_CPU_TARGET = Target("<=", 1.2, on="ratio")
"""DESIGN.md: with PostgreSQL, the service's server CPU per request at most 1.2x the bare app's."""


def _report_postgres(
    report: Report, alternation: Alternation, connections: int, seconds: int
) -> None:
    baseline = "bare FastAPI + SQLAlchemy, same queries"
    for endpoint in ENDPOINTS:
        service = alternation.results[endpoint.name]["service"]
        bare = alternation.results[endpoint.name]["bare"]
        report.figures.append(
            replace(
                _throughput_figure(
                    f"{endpoint.name}, database: postgres, req/s",
                    service,
                    bare,
                    baseline,
                    f"a local PostgreSQL; {connections} connections, {len(service)} x {seconds} s",
                ),
                section="load (postgres)",
            )
        )
        for figure in _cost_figures(
            f"{endpoint.name}, database: postgres", service, bare, baseline
        ):
            target = POSTGRES_CPU_TARGET if figure.unit == "us" else None
            report.figures.append(replace(figure, section="load (postgres)", target=target))
    report.figures += [
        replace(figure, section="memory (postgres)", target=None)
        for figure in _memory_figures(
            alternation, baseline, "every POST adds a row; the processes keep none"
        )
    ]


TELEMETRY_TARGET = Target(">=", 0.95, on="ratio")
"""DESIGN.md: tracing on (10 % sampled) and metrics on cost at most 5 % of the throughput."""
TELEMETRY_ENVIRONMENT = {"TRACE_SAMPLE_RATIO": "0.1", "METRICS": "true"}
CLIENT_TARGET = Target("<=", 1.2, on="ratio")
"""The core's client: at most 1.2x the time of a bare httpx.AsyncClient call."""
CLIENT_SCRIPT = """
import asyncio, io, sys, time
import httpx
from {package}.settings import Settings
from {core} import InternalClient, configure_logging
url, rounds, calls = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
settings = Settings(_env_file=None)
configure_logging(service_name="bench", stream=io.StringIO())  # the call line is written

async def timed(get):
    started = time.perf_counter()
    for _ in range(calls):
        (await get("/livez")).raise_for_status()
    return (time.perf_counter() - started) / calls * 1e6

async def main():
    async with httpx.AsyncClient(base_url=url) as bare, InternalClient(
        settings.core_settings(), callee="bench", base_url=url
    ) as client:
        for warm_up in (bare.get, client.get):
            await timed(warm_up)
        for _ in range(rounds):
            print("BENCH_CALL", await timed(bare.get), await timed(client.get), flush=True)

asyncio.run(main())
"""
"""Run in the service's venv on the load CPU: per round, microseconds per sequential GET /livez of
the plain service, by a bare httpx.AsyncClient and by the core's InternalClient."""


def measure_telemetry(workspace: Workspace, report: Report) -> None:
    """The service with tracing (10 % sampled, spans exported to a local OTLP receiver) and
    metrics on, sharing CPU 0 with the same service with both off; then the core's client
    against a bare httpx client, calling the plain service."""
    from smplcore.testing import otlp_receiver  # noqa: PLC0415 - the tooling's core, not the service's

    options = workspace.options
    wrk, service, package, core, env, collection, tokens, logs = _reference(workspace, "telemetry")
    venv = service / ".venv"
    app = f"{package}.app:create_app"
    with ExitStack() as stack:
        receiver = stack.enter_context(otlp_receiver())
        traced_env = {
            **env,
            **TELEMETRY_ENVIRONMENT,
            "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint,
        }
        plain, traced = (
            stack.enter_context(
                running(start_server(ServerSpec(name, app, service, spec), venv, logs))
            )
            for name, spec in (("plain", env), ("traced", traced_env))
        )
        paths = {
            name: _seed(server, collection, tokens)[0]
            for name, server in (("plain", plain), ("traced", traced))
        }
        generator = LoadGenerator(wrk, options.connections, tokens)
        rig = Rig({"plain": plain, "traced": traced}, paths["plain"], generator, perf=False)
        for endpoint in ENDPOINTS[1:]:  # the page and the POST: the same path on both servers
            rounds = [
                _load_together(rig, endpoint, plain, traced, options.load_seconds)
                for _ in range(options.load_rounds)
            ]
            figure = _throughput_figure(
                f"{endpoint.name}, tracing (10 %) and metrics on, sharing one CPU with both off,"
                " req/s",
                [on for _, on in rounds],
                [off for off, _ in rounds],
                "the same service, both off, at the same time",
                f"{len(receiver.spans())} spans exported to a local OTLP receiver",
            )
            report.figures.append(replace(figure, section="telemetry", target=TELEMETRY_TARGET))
        script = CLIENT_SCRIPT.format(package=package, core=core)
        args = ["taskset", "-c", LOAD_CPU, str(venv / "bin" / "python"), "-c", script]
        output = run(
            [*args, plain.url(""), str(options.load_rounds), "300"], cwd=service, env=env
        ).stdout
        pairs = [
            tuple(map(float, line.split()[1:]))
            for line in output.splitlines()
            if line.startswith("BENCH_CALL")
        ]
        report.figures.append(
            Figure(
                section="telemetry",
                name="one call to another service (GET /livez), us per call",
                unit="us",
                value=Summary.of([client for _, client in pairs]),
                baseline_name="a bare httpx.AsyncClient call",
                baseline=Summary.of([bare for bare, _ in pairs]),
                ratio=Summary.of([client / bare for bare, client in pairs]),
                target=CLIENT_TARGET,
                note="InternalClient: token (cached), headers, retry loop, the call log line",
            )
        )
