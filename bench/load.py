"""The generated service under load, against its anchors; with PostgreSQL; with telemetry on.

Every server is the service's own interpreter and uvicorn with the same flags, pinned to CPU 0,
while wrk runs on CPU 1, on loopback only; requests carry a valid account token (minted from the
service's own settings), and the request logs stay on (sent to /dev/null). httperf, an open-loop
generator, sends each endpoint to E and B at a fixed rate: its p99 counts from each request's
scheduled send, so a pause in the server shows in full.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import time
from collections.abc import Callable, Mapping
from contextlib import ExitStack
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import httpx

from bench import bare_app, bare_sql_app
from bench.counters import callgrind_totals
from bench.profiling import profile_servers
from bench.stats import Figure, NotMeasuredError, Report, Target
from bench.workspace import Workspace, alternate, service_modules
from harness.commands import run, tool_env
from harness.postgres import PostgresUnavailableError, free_port, fresh_database, postgres_server

BENCH_DIR = Path(__file__).resolve().parent
SERVICE_CPU, LOAD_CPU = "0", "1"
CONNECTIONS = 32
SERVER_FLAGS = ["--host", "127.0.0.1", "--no-access-log", "--log-level", "warning"]
"""The same uvicorn flags for every server; one worker (uvicorn's default, a single process)."""
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")

SERVICE_TARGET = Target(">=", 1.0, stretch=1.2)
"""DESIGN.md: the service's throughput at least the hand-written API's, on every endpoint."""
CORE_BUDGET, FLOOR_POINTS = 0.90, 0.03
"""DESIGN.md: the core on the path services use serves at least 0.90 of bare FastAPI's requests,
or comes within 3 points of the minimal request-logging layer (no layer costs less)."""
P99_TARGET = Target("<=", 1.5)
"""E's p99 at a fixed rate (half its capacity) at most 1.5x B's at the same rate."""
FIXED_RATE_SHARE, FIXED_RATE_PASSES = 0.5, 2
RSS_TARGET = Target("<=", 1.25)
"""The service's memory before load at most 1.25x bare FastAPI's."""
POSTGRES_CPU_TARGET = Target("<=", 1.2)
"""DESIGN.md: with PostgreSQL, the service's server CPU per request at most 1.2x the bare app's."""
TELEMETRY_TARGET = Target("<=", 1.05)
"""DESIGN.md: tracing on (10 % sampled) and metrics on cost at most 5 % of the throughput, judged
on the server's CPU per request: the OTLP receiver shares the machine, and its decoding of the
traced service's spans must not count against the service's request rate."""
CLIENT_TARGET = Target("<=", 1.2)
"""The core's client: at most 1.2x the time of a bare httpx.AsyncClient call."""

SERVER_NAMES = {
    "service": "E the generated service",
    "handwritten": "B hand-written idiomatic FastAPI",
    "bare": "A bare FastAPI",
    "core": "C the core on A's handlers",
    "minimal": "D a minimal request-id + log-line layer on A",
    "bare-sql": "bare FastAPI + SQLAlchemy, same queries",
    "traced": "the service, tracing (10 %) and metrics on",
    "plain": "the same service, both off",
}
COMPARISONS = (
    ("service", "handwritten"),
    ("service", "bare"),
    ("core", "bare"),
    ("minimal", "bare"),
)
"""(server, baseline): E/B is the service's goal, E/A shows the limit, C/A is the core's budget and
D/A its floor."""
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
SERVICE_ENVIRONMENT = {
    # A deployed configuration with strong secrets, so nothing runs in a development mode.
    "ENVIRONMENT": "production",
    "LOG_LEVEL": "INFO",
    "ACCOUNT_TOKEN_KEY": "bench-account-token-key-0123456789abcdef0123456789",
    "INTERNAL_TOKEN_SECRET": "bench-internal-token-secret-0123456789abcdef012345",
}
READER, WRITER = "bench-a", "bench-b"
"""Reads use one account holding the seeded widgets; creates another, so the page stays 50."""
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


@dataclass(frozen=True)
class Endpoint:
    name: str
    method: str
    key: str
    """The key of its path and of its recorded answer."""
    account: str


ENDPOINTS = (
    Endpoint("GET one widget", "GET", "one", READER),
    Endpoint("GET a page of 50 widgets", "GET", "page", READER),
    Endpoint("POST (create) a widget", "POST", "created", WRITER),
)


@dataclass(frozen=True)
class Service:
    """A generated service ready to serve: its folder, modules and environment, the widgets'
    path, and a token for each account."""

    path: Path
    package: str
    core: str
    env: dict[str, str]
    collection: str
    tokens: dict[str, str]

    @property
    def app(self) -> str:
        return f"{self.package}.app:create_app"

    def headers(self, account: str, *, body: bool = True) -> dict[str, str]:
        headers = {"Authorization": f"Bearer {self.tokens[account]}", "Accept": JSONAPI}
        return {**headers, "Content-Type": JSONAPI} if body else headers


def prepare_service(workspace: Workspace, path: Path, **env: str) -> Service:
    """The service at `path` with a deployed environment (and `env`), and its tokens."""
    package, core = service_modules(path)
    full_env = {**workspace.env, **SERVICE_ENVIRONMENT, **env}
    script = MINT_SCRIPT.format(package=package, core=core)
    python = str(path / ".venv" / "bin" / "python")
    minted = run([python, "-c", script, READER, WRITER], cwd=path, env=full_env).stdout.split()
    tokens = {READER: minted[1], WRITER: minted[2]}
    return Service(path, package, core, full_env, minted[0], tokens)


@dataclass
class Server:
    """A uvicorn process pinned to the server CPU; its pid is uvicorn's own (taskset execs)."""

    process: subprocess.Popen[bytes]
    port: int

    def url(self, path: str = "") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def rss_mib(self) -> float:
        status = Path(f"/proc/{self.process.pid}/status").read_text()
        match = re.search(r"^VmRSS:\s+(\d+) kB", status, re.MULTILINE)
        return int(match.group(1)) / 1024 if match else 0.0

    def cpu_seconds(self) -> float:
        """User + system CPU time the process has used, from /proc/<pid>/stat."""
        fields = Path(f"/proc/{self.process.pid}/stat").read_text().rpartition(")")[2].split()
        return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)


@dataclass(frozen=True)
class Run:
    """One wrk run against one server, with the CPU time the server spent on it."""

    requests: int
    seconds: float
    cpu_seconds: float

    def requests_per_second(self) -> float:
        return self.requests / self.seconds

    def cpu_us_per_request(self) -> float:
        return self.cpu_seconds / self.requests * 1e6


RESULT_LINE = re.compile(
    r"^BENCH_RESULT requests=(\d+) duration_us=(\d+) errors=(\d+)$", re.MULTILINE
)
METRICS: tuple[tuple[str, str, Callable[[Run], float]], ...] = (
    ("req/s", "req/s", Run.requests_per_second),
    ("server CPU per request", "us", Run.cpu_us_per_request),
)


class Rig:
    """One section's servers, started from the service's venv on the server CPU and stopped when
    `stack` closes; the endpoints' paths on them; and the load, by wrk on the load CPU."""

    def __init__(self, workspace: Workspace, service: Service, stack: ExitStack) -> None:
        self.workspace, self.service, self.stack = workspace, service, stack
        wrk = shutil.which("wrk")
        if wrk is None:
            raise RuntimeError("the load sections need wrk: `sudo apt-get install -y wrk`")
        self.wrk = wrk
        self.logs = workspace.fresh("servers", create=True)
        self.servers: dict[str, Server] = {}
        self.paths: dict[str, str] = {}

    def start(self, name: str, app: str, cwd: Path, env: Mapping[str, str]) -> Server:
        """`uvicorn APP --factory` run from `cwd`, once it accepts connections."""
        port, log = free_port(), self.logs / f"{name}.stderr.log"
        uvicorn = str(self.service.path / ".venv" / "bin" / "uvicorn")
        args = ["taskset", "-c", SERVICE_CPU, uvicorn, app, "--factory", "--port", str(port)]
        with log.open("wb") as stderr:
            process = subprocess.Popen(  # noqa: S603 - fixed arguments
                [*args, *SERVER_FLAGS],
                cwd=cwd,
                env=tool_env(env),
                stdout=subprocess.DEVNULL,  # the request log lines
                stderr=stderr,
            )
        server = self.servers[name] = Server(process, port)
        self.stack.callback(server.stop)
        deadline = time.monotonic() + 60
        while process.poll() is None and time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                return server
            except OSError:
                time.sleep(0.1)
        raise RuntimeError(f"{name} did not start ({process.returncode}):\n{log.read_text()}")

    def seed(self, name: str) -> dict[str, Any]:
        """POST to a service the widgets the GETs read; its answer to each endpoint."""
        collection, headers = self.service.collection, self.service.headers(READER)
        with httpx.Client(base_url=self.servers[name].url(), timeout=10) as client:
            for number in range(SEEDED_WIDGETS):
                body = {"data": {"type": "widgets", "attributes": {"name": f"widget {number:02d}"}}}
                created = _expect(client.post(collection, json=body, headers=headers), 201)
                if number == 0:
                    self.paths["one"] = f"{collection}/{created['data']['id']}"
        self.paths.update(page=collection + PAGE_QUERY, created=collection)
        answers = self.answers(name)
        if len(answers["page"]["data"]) != SEEDED_WIDGETS:
            raise RuntimeError(f"the page holds {len(answers['page']['data'])} widgets, not 50")
        return {**answers, "collection": collection}

    def answers(self, name: str) -> dict[str, Any]:
        """The server's answer to each endpoint (the POST creates a widget)."""
        reader, writer = self.service.headers(READER), self.service.headers(WRITER)
        with httpx.Client(base_url=self.servers[name].url(), timeout=10) as client:
            return {
                "one": _expect(client.get(self.paths["one"], headers=reader), 200),
                "page": _expect(client.get(self.paths["page"], headers=reader), 200),
                "created": _expect(
                    client.post(self.paths["created"], json=CREATE_BODY, headers=writer), 201
                ),
            }

    def run(self, endpoint: Endpoint, name: str, seconds: int) -> Run:
        """One wrk run, one thread. Any error or non-2xx answer fails it: a 401 must never pass
        for a fast answer."""
        server = self.servers[name]
        args = ["taskset", "-c", LOAD_CPU, self.wrk, "-t1", f"-c{CONNECTIONS}", f"-d{seconds}s"]
        args += ["--timeout", "10s", "-s", str(BENCH_DIR / "wrk.lua")]
        headers = self.service.headers(endpoint.account, body=endpoint.method == "POST")
        for key, value in headers.items():
            args += ["-H", f"{key}: {value}"]
        env = {"BENCH_WRK_METHOD": endpoint.method}
        if endpoint.method == "POST":
            env["BENCH_WRK_BODY"] = json.dumps(CREATE_BODY)
        before = server.cpu_seconds()
        url = server.url(self.paths[endpoint.key])
        output = run([*args, url], env=env, timeout=seconds + 60).stdout
        cpu_seconds = server.cpu_seconds() - before
        match = RESULT_LINE.search(output)
        if match is None or int(match.group(3)) or not int(match.group(1)):
            raise RuntimeError(f"{endpoint.name} on {name}: wrk counted errors:\n{output}")
        return Run(int(match.group(1)), int(match.group(2)) / 1e6, cpu_seconds)

    def rounds(self, endpoint: Endpoint) -> dict[str, list[Run]]:
        """A warm-up round, then rounds in which the servers take turns, in alternating order."""
        seconds, rounds = self.workspace.options.load_seconds, self.workspace.options.load_rounds
        actions = {name: partial(self.run, endpoint, name, seconds) for name in self.servers}
        return alternate(actions, rounds, warmups=1)


def compare(
    report: Report,
    section: str,
    endpoint: Endpoint,
    pair: tuple[str, str],
    rounds: Mapping[str, list[Run]],
) -> dict[str, Figure]:
    """Throughput and the server's CPU per request of one server beside another's, by unit."""
    ours, base = pair
    return {
        unit: report.add(
            section,
            f"{endpoint.name}, {SERVER_NAMES[ours]}, {label}",
            unit,
            [metric(one) for one in rounds[ours]],
            [metric(one) for one in rounds[base]],
            baseline_name=SERVER_NAMES[base],
            note=f"{CONNECTIONS} connections, {len(rounds[ours])} rounds",
        )
        for label, unit, metric in METRICS
    }


def _expect(response: httpx.Response, status: int) -> dict[str, Any]:
    if response.status_code != status:
        raise RuntimeError(
            f"{response.request.method} {response.request.url} answered {response.status_code}, "
            f"not {status}: {response.text[:2000]}"
        )
    document: dict[str, Any] = response.json()
    return document


def anchor_apps(workspace: Workspace, service: Service) -> tuple[Path, dict[str, tuple[str, Any]]]:
    """A folder of the bench's apps, of its own so that nothing else of bench/ is importable, and
    the app and environment of B, A, C and D, which serve E's answers recorded in payloads.json.
    Each is served by the service's own uvicorn and interpreter, so the versions are the same."""
    apps = workspace.fresh("apps", create=True)
    for name in ("bare_app.py", "handwritten_app.py", "asgi_driver.py"):
        shutil.copy2(BENCH_DIR / name, apps / name)
    env = {**service.env, bare_app.PAYLOADS_VARIABLE: str(apps / "payloads.json")}
    modules = f"{service.package}:{service.core}"
    return apps, {
        "handwritten": ("handwritten_app:create_app", env),
        "bare": ("bare_app:create_app", env),
        "core": ("bare_app:create_app", {**env, bare_app.WITH_CORE_VARIABLE: modules}),
        "minimal": ("bare_app:create_app", {**env, bare_app.MINIMAL_LAYER_VARIABLE: "1"}),
    }


VARYING = re.compile(r"[0-9a-f]{8}(?:-[0-9a-f]{4}){3}-[0-9a-f]{12}|\d{4}-\d\d-\d\dT[^\"]*")
"""A new widget's id and times: each server makes its own."""


def measure_load(workspace: Workspace, report: Report) -> None:
    """req/s, CPU per request, fixed-rate p99 and memory of the service, against its anchors.

    Seed E, record its answers, start B, A, C and D from them, check each serves the same JSON,
    then alternate wrk rounds per endpoint, then the fixed-rate rounds."""
    service = prepare_service(workspace, workspace.reference_service())
    with ExitStack() as stack:
        rig = Rig(workspace, service, stack)
        rig.start("service", service.app, service.path, service.env)
        payloads = rig.seed("service")
        apps, anchors = anchor_apps(workspace, service)
        (apps / "payloads.json").write_text(json.dumps(payloads))
        for name, (app, env) in anchors.items():
            rig.start(name, app, apps, env)
            for key, answer in rig.answers(name).items():
                ours = json.dumps(answer).replace(
                    rig.servers[name].url(), rig.servers["service"].url()
                )
                theirs = json.dumps(payloads[key])
                if key == "created":
                    ours, theirs = VARYING.sub("?", ours), VARYING.sub("?", theirs)
                if ours != theirs:
                    raise RuntimeError(f"{name}'s {key!r} differs from E's:\n{ours}\n{theirs}")
        idle = {name: rig.servers[name].rss_mib() for name in ("service", "bare")}
        results = {endpoint: rig.rounds(endpoint) for endpoint in ENDPOINTS}
        goals = []
        for endpoint, rounds in results.items():
            figures = {
                pair: compare(report, "load", endpoint, pair, rounds) for pair in COMPARISONS
            }
            floor = figures["minimal", "bare"]["req/s"].ratio.median
            floor_text = f"D's {floor:.3f} less 3 points"
            figures["core", "bare"]["req/s"].target = Target(
                ">=", CORE_BUDGET, alternative=floor - FLOOR_POINTS, alternative_text=floor_text
            )
            figures["service", "handwritten"]["req/s"].target = SERVICE_TARGET
            goals.append(figures["service", "handwritten"]["req/s"])
        report.add(
            "memory",
            "RSS before load (seeded)",
            "MiB",
            [idle["service"]],
            [idle["bare"]],
            baseline_name=SERVER_NAMES["bare"],
            target=RSS_TARGET,
        )
        _fixed_rate(workspace, report, rig, results)
        _profile_missed(workspace, report, rig, goals)


HISTOGRAM_LINE = re.compile(r"^\s+(\d+(?:\.\d+)?)\s+(\d+)\s*$")
HTTPERF_ERRORS = re.compile(r"^Errors: total (\d+) client-timo (\d+)", re.MULTILINE)
HTTPERF_CONNECTIONS = 900
"""httperf waits on its connections with select(), which takes 1,024 descriptors at most, and
opens one per request: a timeout of 900 / rate seconds keeps it under that when the server falls
behind, and a request that times out counts as slower than every answered one."""


def httperf_p99_ms(output: str) -> float:
    """The 99th percentile of httperf's request times (one request per connection), from its
    histogram of 1 ms bins (`-v -v`): the upper edge of the bin that reaches 99 %, the requests that
    timed out counted beyond the last.

    Raises NotMeasuredError where httperf did not hold its rate: a request it could not send (no
    descriptor, no port, a refused or reset connection), or more than 1 % timed out."""
    if re.search(r"\b[1345]xx=[1-9]", output):
        raise RuntimeError(f"httperf counted replies other than 2xx:\n{output}")
    counted = HTTPERF_ERRORS.search(output)
    errors, timeouts = (int(count) for count in counted.groups()) if counted else (-1, 0)
    if errors != timeouts:
        raise NotMeasuredError(" ".join(re.findall(r"^Errors: .*$", output, re.MULTILINE)))
    _, _, histogram = output.partition("Connection lifetime histogram (time in ms):")
    bins = []
    for line in histogram.splitlines()[1:]:
        match = HISTOGRAM_LINE.match(line)
        if match is None and line.strip() != ":":
            break
        if match is not None:
            bins.append((float(match.group(1)) + 0.5, int(match.group(2))))
    total, seen = sum(count for _, count in bins) + timeouts, 0
    for upper, count in bins:
        seen += count
        if seen >= 0.99 * total:
            return upper
    raise NotMeasuredError(f"{timeouts} of {total} requests timed out, more than 1 %")


def _fixed_rate(
    workspace: Workspace, report: Report, rig: Rig, results: Mapping[Endpoint, dict[str, list[Run]]]
) -> None:
    """E's and B's p99 at the same fixed rate, half of E's capacity, per endpoint (open loop)."""
    httperf = shutil.which("httperf")
    if httperf is None:
        report.not_measured.append(
            "load: p99 at a fixed rate: needs httperf (`apt-get install httperf`)"
        )
        return
    seconds = workspace.options.load_seconds
    sessions = workspace.fresh("httperf", create=True)
    for endpoint in ENDPOINTS:
        capacity = statistics.median(r.requests_per_second() for r in results[endpoint]["service"])
        rate = max(1, round(capacity * FIXED_RATE_SHARE))
        timeout = min(10.0, HTTPERF_CONNECTIONS / rate)
        session = sessions / f"{endpoint.key}.txt"
        body = json.dumps(json.dumps(CREATE_BODY, separators=(",", ":")))
        extra = f" method=POST contents={body}" if endpoint.method == "POST" else ""
        session.write_text(f"{rig.paths[endpoint.key]}{extra}\n")
        headers = rig.service.headers(endpoint.account).items()
        args = ["taskset", "-c", LOAD_CPU, httperf, "--hog", "-v", "-v", "--server", "127.0.0.1"]
        args += ["--timeout", f"{timeout:.3f}", "--rate", str(rate)]
        args += ["--wsesslog", f"{rate * seconds},0,{session}"]
        args += ["--add-header", "".join(f"{key}: {value}\\n" for key, value in headers)]

        def p99(name: str, args: list[str] = args) -> float:
            port = ["--port", str(rig.servers[name].port)]
            try:
                return httperf_p99_ms(run([*args, *port], timeout=seconds + 60).stdout)
            except (NotMeasuredError, subprocess.TimeoutExpired) as error:
                raise NotMeasuredError(f"{SERVER_NAMES[name]}: {error}") from None

        title = f"{endpoint.name}, p99 at a fixed rate"
        note = f"httperf, open loop, {rate} req/s (half E's capacity), one request per connection"
        try:
            passes = alternate(
                {name: partial(p99, name) for name in ("service", "handwritten")}, FIXED_RATE_PASSES
            )
        except NotMeasuredError as error:
            held = f"httperf did not hold {rate} req/s (timeout {timeout:.3f} s)"
            report.not_measured.append(f"load: {title}: {held}: {error}")
            continue
        report.add(
            "load",
            f"{title}: {SERVER_NAMES['service']}",
            "ms",
            passes["service"],
            passes["handwritten"],
            baseline_name=SERVER_NAMES["handwritten"],
            target=P99_TARGET,
            note=f"{note}, {FIXED_RATE_PASSES} passes x {seconds} s; 1 ms bins",
        )


def _profile_missed(workspace: Workspace, report: Report, rig: Rig, goals: list[Figure]) -> None:
    """Sample E and B with py-spy under the load of each endpoint where E missed its goal."""
    ours = {rig.service.core: "ours: core/", rig.service.package: "ours: template/"}
    for endpoint, figure in zip(ENDPOINTS, goals, strict=True):
        if not workspace.options.should_profile(figure.missed()):
            continue

        def cpu_us_per_request(name: str, seconds: int, endpoint: Endpoint = endpoint) -> float:
            return rig.run(endpoint, name, seconds).cpu_us_per_request()

        lines = profile_servers(
            {name: rig.servers[name].process.pid for name in ("service", "handwritten")},
            cpu_us_per_request,
            seconds=max(workspace.options.load_seconds * 2, 4),
            output_dir=workspace.fresh("profile", create=True),
            ours=ours,
        )
        report.add_note(f"Profile: {endpoint.name} under load (py-spy), E | B", lines)


IN_PROCESS_REQUESTS = 200
"""Per endpoint and app, after a warm-up: under callgrind a request runs fifty times slower."""


def measure_core_costs(workspace: Workspace, report: Report) -> None:
    """Instructions per in-process request of the load section's servers (callgrind), compared
    as there.

    Each app is sent each endpoint's requests through ASGI calls (bench/asgi_driver.py), in the
    service's interpreter, and callgrind counts each endpoint's requests apart, start-up left out.
    The counts of one command vary by well under 1 %: a change that saves 1 % of a bare request
    shows here when no timing on a shared machine could show it."""
    service = prepare_service(workspace, workspace.reference_service())
    apps, anchors = anchor_apps(workspace, service)
    python = str(service.path / ".venv" / "bin" / "python")
    setup = {
        "collection": service.collection, "page": PAGE_QUERY, "body": CREATE_BODY,
        "reader": service.tokens[READER], "writer": service.tokens[WRITER], "record": "",
    }  # fmt: skip
    counts = {}
    for name, (app, env) in {"service": (service.app, service.env), **anchors}.items():
        # E first: its answers are what the others serve
        record = str(apps / "payloads.json") if name == "service" else ""
        args = [python, "asgi_driver.py", app, str(IN_PROCESS_REQUESTS)]
        args.append(json.dumps({**setup, "record": record}))
        segments = callgrind_totals(args, cwd=apps, env=env, dump_before="getppid")
        if len(segments) != len(ENDPOINTS) + 2:  # start-up, each endpoint's requests, the exit
            raise RuntimeError(f"{name}: {len(segments)} segments counted, not the driver's")
        counts[name] = [count / IN_PROCESS_REQUESTS / 1000 for count in segments[1:4]]
    for index, endpoint in enumerate(ENDPOINTS):
        for ours, base in COMPARISONS:
            report.add(
                "core-costs",
                f"{endpoint.name}, {SERVER_NAMES[ours]}, instructions per request",
                "k",
                [counts[ours][index]],
                [counts[base][index]],
                baseline_name=SERVER_NAMES[base],
                note=f"in-process, callgrind, {IN_PROCESS_REQUESTS} requests",
            )


def measure_postgres_load(workspace: Workspace, report: Report) -> None:
    """The `database: postgres` service under load, against bare FastAPI + SQLAlchemy.

    Both on a local PostgreSQL, the bare app (bench/bare_sql_app.py) making the same queries on
    the same database."""
    path = workspace.reference_service("postgres")
    with ExitStack() as stack:
        try:
            server_url = stack.enter_context(postgres_server())
        except PostgresUnavailableError as error:
            raise NotMeasuredError(str(error)) from None
        database_url = stack.enter_context(fresh_database(server_url, "bench"))
        pool = str(CONNECTIONS)  # a connection per load connection, for both servers
        service = prepare_service(
            workspace, path, DATABASE_URL=database_url, DATABASE_POOL_SIZE=pool
        )
        run([str(path / ".venv" / "bin" / "alembic"), "upgrade", "head"], cwd=path, env=service.env)
        rig = Rig(workspace, service, stack)
        rig.start("service", service.app, path, service.env)
        payloads = rig.seed("service")
        shutil.copy2(BENCH_DIR / "bare_sql_app.py", rig.logs / "bare_sql_app.py")
        env = {
            **service.env,
            bare_sql_app.COLLECTION_VARIABLE: service.collection,
            bare_sql_app.ACCOUNTS_VARIABLE: f"{READER},{WRITER}",
        }
        rig.start("bare-sql", "bare_sql_app:create_app", rig.logs, env)
        theirs = rig.answers("bare-sql")["page"]["data"]
        if [w["id"] for w in theirs] != [w["id"] for w in payloads["page"]["data"]]:
            raise RuntimeError("bare FastAPI + SQLAlchemy reads other widgets than the service")
        for endpoint in ENDPOINTS:
            pair = ("service", "bare-sql")
            figures = compare(report, "load-postgres", endpoint, pair, rig.rounds(endpoint))
            figures["us"].target = POSTGRES_CPU_TARGET


TELEMETRY_ENVIRONMENT = {"TRACE_SAMPLE_RATIO": "0.1", "METRICS": "true"}
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
    """Tracing (10 %) and metrics on against both off, and the core's client against httpx.

    The traced service (spans exported to a local OTLP receiver) and the same service with both
    off take turns under load, as the load section's servers do; the clients call the plain
    service."""
    from smplcore.testing import otlp_receiver  # noqa: PLC0415 - the tooling's core, not the service's

    options = workspace.options
    service = prepare_service(workspace, workspace.reference_service())
    with ExitStack() as stack:
        receiver = stack.enter_context(otlp_receiver())
        rig = Rig(workspace, service, stack)
        traced_env = {**TELEMETRY_ENVIRONMENT, "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint}
        for name, env in (("plain", service.env), ("traced", {**service.env, **traced_env})):
            rig.start(name, service.app, service.path, env)
            rig.seed(name)
        for endpoint in ENDPOINTS[1:]:  # the page and the POST: the same path on both servers
            figures = compare(
                report, "telemetry", endpoint, ("traced", "plain"), rig.rounds(endpoint)
            )
            figures["us"].target = TELEMETRY_TARGET
        if not receiver.spans():
            raise RuntimeError("the traced service exported no span")
        script = CLIENT_SCRIPT.format(package=service.package, core=service.core)
        python = str(service.path / ".venv" / "bin" / "python")
        args = ["taskset", "-c", LOAD_CPU, python, "-c", script, rig.servers["plain"].url()]
        output = run([*args, str(options.load_rounds), "300"], cwd=service.path, env=service.env)
        pairs = [
            line.split()[1:] for line in output.stdout.splitlines() if line.startswith("BENCH_CALL")
        ]
        report.add(
            "telemetry",
            "one call to another service (GET /livez), us per call",
            "us",
            [float(client) for _, client in pairs],
            [float(bare) for bare, _ in pairs],
            baseline_name="a bare httpx.AsyncClient call",
            target=CLIENT_TARGET,
            note="InternalClient: token (cached), headers, retry loop, the call log line",
        )
