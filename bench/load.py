"""Throughput, latency and memory of the generated service under load, against bare FastAPI.

Every server runs the service's own interpreter and uvicorn with the same flags, pinned to CPU 0
(`taskset -c 0`), while wrk drives them from CPU 1, on loopback only. Rounds alternate between the
service, the bare app and the core stack on the bare handlers, so noise from the rest of the machine
lands on each, and the figures are per-round ratios to bare. The core's budget figure, and the floor
under it (bare_app.MinimalRequestLog), come from rounds that load bare FastAPI and the other server
at the same time on CPU 0. Requests carry a valid account token (minted from the service's own
settings), and the request logs stay on (sent to /dev/null): their cost is part of the figures.
Every wrk run is bounded by its duration; every wait by a timeout.

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
P99_TARGET = Target("<=", 1.6, on="ratio")
"""The service's p99 latency at most 1.6x bare FastAPI's."""
RSS_TARGET = Target("<=", 1.2, on="ratio")
"""The service's memory before load at most 1.2x bare FastAPI's."""
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
    target: Target
    """The service's throughput against bare FastAPI's (DESIGN.md), with the stretch goal."""


ENDPOINTS = (
    Endpoint("GET one widget", "GET", "one", "reader", Target(">=", 0.70, "ratio", stretch=0.80)),
    Endpoint(
        "GET a page of 50 widgets",
        "GET",
        "page",
        "reader",
        Target(">=", 0.60, "ratio", stretch=0.80),
    ),
    Endpoint(
        "POST (create) a widget",
        "POST",
        "created",
        "writer",
        Target(">=", 0.70, "ratio", stretch=0.80),
    ),
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


def ensure_wrk() -> str:
    """wrk's path; installed from Debian when missing and running as root, else a clear error."""
    found = shutil.which("wrk")
    if found:
        return found
    hint = (
        "wrk is needed for the load test: install it with `sudo apt-get install -y wrk` "
        "(Debian/Ubuntu)."
    )
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        raise RuntimeError(hint)
    print("wrk is missing: installing it with apt-get (running as root)", flush=True)
    env = {"DEBIAN_FRONTEND": "noninteractive"}
    if run(["apt-get", "install", "-y", "-qq", "wrk"], env=env, check=False).returncode != 0:
        run(["apt-get", "update", "-qq"], env=env, timeout=300)
        run(["apt-get", "install", "-y", "-qq", "wrk"], env=env, timeout=300)
    found = shutil.which("wrk")
    if not found:
        raise RuntimeError(hint)
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


@dataclass
class Measurements:
    alternation: Alternation
    shared: dict[str, list[tuple[WrkResult, WrkResult]]]
    """endpoint name -> (bare, core) per round, loaded at the same time on the same CPU."""
    floor: dict[str, list[tuple[WrkResult, WrkResult]]]
    """endpoint name -> (bare, minimal request-logging layer) per round, the same way."""
    final: dict[str, dict[str, int]]


def measure_load(workspace: Workspace, report: Report) -> None:
    """Seed, record the payloads, start the bare app, then alternate wrk rounds per endpoint."""
    options = workspace.options
    wrk, service, package, core, env, collection, tokens, logs = _reference(workspace, "load")
    venv = service / ".venv"
    service_app = f"{package}.app:create_app"
    with running(start_server(ServerSpec("service", service_app, service, env), venv, logs)) as app:
        paths, payloads = _seed(app, collection, tokens)
        # The bare app runs from a folder of its own, so nothing else of bench/ is importable there.
        bare_dir = logs / "bare"
        bare_dir.mkdir()
        shutil.copy2(BENCH_DIR / "bare_app.py", bare_dir / "bare_app.py")
        (bare_dir / "payloads.json").write_text(json.dumps(payloads))
        bare_env = {**env, PAYLOADS_VARIABLE: str(bare_dir / "payloads.json")}
        bare_app = "bare_app:create_app"
        core_env = {**bare_env, WITH_CORE_VARIABLE: f"{package}:{core}"}
        minimal_env = {**bare_env, MINIMAL_LAYER_VARIABLE: "1"}
        with (
            running(
                start_server(ServerSpec("bare", bare_app, bare_dir, bare_env), venv, logs)
            ) as bare,
            running(
                start_server(ServerSpec("core", bare_app, bare_dir, core_env), venv, logs)
            ) as cored,
            running(
                start_server(ServerSpec("minimal", bare_app, bare_dir, minimal_env), venv, logs)
            ) as minimal,
        ):
            for server in (bare, cored, minimal):
                _check_bare(server, paths, payloads, tokens)
            generator = LoadGenerator(wrk, options.connections, tokens)
            servers = {"service": app, "bare": bare, "core": cored}
            rig = Rig(servers, paths, generator, perf=_servers_counted(report, "load"))
            measured = _run_rounds(workspace, rig, minimal)
            _report(report, measured, options.connections, options.load_seconds)
            ours = {core: "ours: core/", package: "ours: template/"}
            _maybe_profile(workspace, report, rig, measured, ours)


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
        _expect(one, 200)
        _expect(page, 200)
        if len(page.json()["data"]) != SEEDED_WIDGETS:
            raise RuntimeError(
                f"the page holds {len(page.json()['data'])} widgets, not {SEEDED_WIDGETS}"
            )
    paths = {"one": one_path, "page": collection + PAGE_QUERY, "created": collection}
    payloads = {"one": one.json(), "page": page.json(), "created": created[-1]}
    return paths, {**payloads, "collection": collection}


def _expect(response: httpx.Response, status: int) -> None:
    if response.status_code != status:
        raise RuntimeError(
            f"{response.request.method} {response.request.url} answered {response.status_code}, "
            f"not {status}: {response.text[:2000]}"
        )


def _check_bare(
    bare: Server, paths: Mapping[str, str], payloads: Mapping[str, Any], tokens: Mapping[str, str]
) -> None:
    """The baseline must serve the same documents, or the comparison means nothing."""
    with httpx.Client(base_url=bare.url(""), timeout=10) as client:
        one = client.get(paths["one"], headers=_headers(tokens["reader"]))
        page = client.get(paths["page"], headers=_headers(tokens["reader"]))
        created = client.post(
            paths["created"], json=CREATE_BODY, headers=_headers(tokens["writer"])
        )
    for response, status, expected in (
        (one, 200, "one"),
        (page, 200, "page"),
        (created, 201, "created"),
    ):
        _expect(response, status)
        if response.json() != payloads[expected]:
            raise RuntimeError(f"the bare app's {expected!r} document differs from the service's")


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


def _run_rounds(workspace: Workspace, rig: Rig, minimal: Server) -> Measurements:
    """The alternating rounds; then the rounds where bare FastAPI shares the server CPU with the
    core, then with `minimal`."""
    options = workspace.options
    servers = rig.servers
    alternation = _alternate(workspace, rig)

    def together(other: Server) -> dict[str, list[tuple[WrkResult, WrkResult]]]:
        return {
            endpoint.name: [
                _load_together(rig, endpoint, servers["bare"], other, options.load_seconds)
                for _ in range(options.load_rounds)
            ]
            for endpoint in ENDPOINTS
        }

    shared, floor = together(servers["core"]), together(minimal)
    final = {name: server.memory() for name, server in servers.items()}
    return Measurements(alternation, shared, floor, final)


def _load_together(
    rig: Rig, endpoint: Endpoint, first: Server, second: Server, seconds: int
) -> tuple[WrkResult, WrkResult]:
    """Both servers under load at once, sharing the server CPU (two wrk on the load CPU).

    The kernel gives two busy processes on one CPU equal time, so the ratio of their request
    rates is the ratio of their costs per request, measured under the same conditions: a
    machine that speeds up or slows down (a shared VM does, by up to 2x within seconds here)
    moves both alike, where alternating rounds only pair neighbours in time.
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


def _cost_metrics(results: list[WrkResult]) -> list[tuple[str, str, str]]:
    """CPU per request, and instructions too where perf counted them for every run."""
    metrics = [("server CPU per request", "cpu_us_per_request", "us")]
    if all(result.server_instructions for result in results):
        metrics.append(("server instructions per request", "kilo_instructions_per_request", "k"))
    return metrics


LATENCY_METRICS = [("p50 latency", "p50_ms", "ms"), ("p99 latency", "p99_ms", "ms")]


def _per_request_figures(
    prefix: str,
    ours: list[WrkResult],
    base: list[WrkResult],
    baseline_name: str,
    metrics: list[tuple[str, str, str]],
) -> list[Figure]:
    """One figure per (label, WrkResult attribute, unit), beside the baseline's; p99 latency is
    judged against its budget."""
    return [
        Figure(
            section="load",
            name=f"{prefix}, {label}",
            unit=unit,
            value=Summary.of([getattr(result, attribute) for result in ours]),
            baseline_name=baseline_name,
            baseline=Summary.of([getattr(result, attribute) for result in base]),
            target=P99_TARGET if attribute == "p99_ms" else None,
        )
        for label, attribute, unit in metrics
    ]


def _median_ratio(pairs: list[tuple[WrkResult, WrkResult]]) -> float:
    """The median of the second server's request rate over the first's, per round."""
    return Summary.of([second.rps / first.rps for first, second in pairs]).median


def _report(report: Report, measured: Measurements, connections: int, seconds: int) -> None:
    rounds = measured.alternation.results
    for endpoint in ENDPOINTS:
        service = rounds[endpoint.name]["service"]
        bare = rounds[endpoint.name]["bare"]
        cored = rounds[endpoint.name]["core"]
        throughput = _throughput_figure(
            f"{endpoint.name}, req/s",
            service,
            bare,
            "bare FastAPI, same payload",
            f"{connections} connections, {len(service)} x {seconds} s",
        )
        report.figures.append(replace(throughput, target=endpoint.target))
        floor = measured.floor[endpoint.name]
        floor_ratio = _median_ratio(floor)
        shared = measured.shared[endpoint.name]
        core_figure = _throughput_figure(
            f"{endpoint.name}, core stack on the bare handler, sharing one CPU with it, req/s",
            [core for _, core in shared],
            [base for base, _ in shared],
            "bare FastAPI, same handler, at the same time",
            "install_core as the service calls it, the route a feature_route; "
            "the handler returns the same dict. The core's budget figure",
        )
        core_target = Target(
            ">=",
            CORE_BUDGET,
            on="ratio",
            alternative=floor_ratio - FLOOR_POINTS,
            alternative_text=f"the minimal layer's {floor_ratio:.3f} less 3 points",
        )
        report.figures.append(replace(core_figure, target=core_target))
        report.figures.append(
            _throughput_figure(
                f"{endpoint.name}, minimal request-logging layer on the bare handler, "
                "sharing one CPU with it, req/s",
                [layer for _, layer in floor],
                [base for base, _ in floor],
                "bare FastAPI, same handler, at the same time",
                "bare_app.MinimalRequestLog: a request id and one request line, nothing "
                "else. The floor under the core's figure, measured the same way",
            )
        )
        report.figures.append(
            _throughput_figure(
                f"{endpoint.name}, core stack on the bare handler, alone, req/s",
                cored,
                bare,
                "bare FastAPI, same handler, in the neighbouring round",
                "the same servers in alternating rounds: the machine's drift shows here",
            )
        )
        report.figures += _per_request_figures(
            f"{endpoint.name}, core stack on the bare handler",
            cored,
            bare,
            "bare FastAPI, same handler",
            _cost_metrics([*cored, *bare]),
        )
        report.figures += _per_request_figures(
            endpoint.name,
            service,
            bare,
            "bare FastAPI",
            [*_cost_metrics([*service, *bare]), *LATENCY_METRICS],
        )
    peak_hwm = measured.final["service"]["VmHWM"] * MIB
    bare_hwm = measured.final["bare"]["VmHWM"] * MIB
    report.figures += _memory_figures(
        measured.alternation,
        "bare FastAPI",
        f"VmHWM at the end: {peak_hwm:.1f} MiB, bare {bare_hwm:.1f} MiB; "
        "every POST keeps a widget in the in-memory storage",
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
    workspace: Workspace, report: Report, rig: Rig, measured: Measurements, ours: dict[str, str]
) -> None:
    """Sample both servers with py-spy under the load of each endpoint that missed its budget."""
    options = workspace.options
    for endpoint in ENDPOINTS:
        rounds = measured.alternation.results[endpoint.name]
        ratio = _median_ratio(list(zip(rounds["bare"], rounds["service"], strict=True)))
        if not options.should_profile(not endpoint.target.met_by(ratio)):
            continue

        def drive(name: str, seconds: int, endpoint: Endpoint = endpoint) -> float:
            return rig.load(endpoint, rig.servers[name], seconds).cpu_us_per_request

        lines = profile_server_under_load(
            {name: server.process.pid for name, server in rig.servers.items()},
            drive,
            seconds=max(options.load_seconds * 2, 4),
            output_dir=workspace.fresh("profile"),
            ours=ours,
        )
        report.add_note(f"Profile: {endpoint.name} under load (py-spy, ratio {ratio:.2f})", lines)


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
        env = {**workspace.env, **SERVICE_ENVIRONMENT, "DATABASE_URL": database_url}
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
        report.figures += [
            replace(figure, section="load (postgres)", target=None)
            for figure in _per_request_figures(
                endpoint.name,
                service,
                bare,
                baseline,
                [*_cost_metrics(service + bare), *LATENCY_METRICS],
            )
        ]
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
