"""A real container engine for the tests: podman, with every piece of its state in one folder.

podman runs with runc, cgroupfs and host networking (no firewall tables, no /run/netns mounts),
ulimits within this machine's own, its configuration, storage and temporary files in the folder it
is given (its run folder in a short one of /tmp's); `podman_engine` removes every container, image
and mount it made, and checks that none is left, when it ends.

No registry needs to be reachable: the base images the Dockerfiles name are stand-ins made on this
machine (the Dockerfiles keep their official FROM lines; only this engine's storage knows them):
- `python:X.Y.Z-slim-<release>`: Debian <release>'s own root filesystem (mmdebstrap, minbase, with
  python3 and ca-certificates; Debian's Python linked where the official image keeps its own), so
  only the release's own Python version can be stood in for (3.11 for bookworm). Made once and kept
  in .cache/images/, named by the release and its recipe. Its uv configuration trusts the system's
  CA store, over which every build mounts this machine's CA bundle (or the one it is given).
- `ghcr.io/astral-sh/uv:<version>`: FROM scratch with this environment's uv and uvx, which must be
  that version.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import resource
import shutil
import tempfile
import time
import urllib.request
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from subprocess import CompletedProcess
from typing import Any

from harness.commands import REPO_ROOT, run, tool_env
from harness.core_index import machine_ca_bundle

INSTALL_HINT = (
    "podman, runc and mmdebstrap build and run the generated images in the tests: install them "
    "(Debian/Ubuntu, as root: apt-get install podman runc mmdebstrap)"
)
TOOLS = ("podman", "runc", "mmdebstrap")
STAND_INS = REPO_ROOT / ".cache" / "images"
"""The stand-in root filesystems, kept between runs (git-ignored)."""
DEBIAN_PYTHON = {"bookworm": "3.11"}
"""The python3 of each Debian release a stand-in can be made from."""
NPROC = 32768
"""The containers' process limit (podman's default, or this machine's hard limit if lower)."""
PROBE_RELEASE = "bookworm"
"""The stand-in that shows the engine can run a container (every generated image needs it)."""
DEBIAN_PACKAGES = ("python3", "ca-certificates")
IMAGE_CA_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"
"""The system CA store of the stand-in (Debian's ca-certificates)."""
OFFICIAL_PYTHON = re.compile(r"python:(\d+\.\d+)\.\d+-slim-(\w+)")
FROM_LINE = re.compile(r"FROM\s+(?:--\S+\s+)*(\S+)(?:\s+AS\s+(\S+))?\s*$", re.IGNORECASE)
OFFICIAL_UV = re.compile(r"ghcr\.io/astral-sh/uv:(\d+\.\d+\.\d+)")
AS_ECS_RUNS_IT = ("--network=host", "--read-only", "--read-only-tmpfs=false", "--tmpfs=/tmp")
"""A read-only root filesystem with /tmp the only writable folder, as the task definition runs
the container; the host's network, so the container reaches the tests' servers on loopback."""


class EngineUnavailableError(RuntimeError):
    """podman (or what it needs) is missing or cannot run here; the message says what to install."""


class EngineLeftoversError(RuntimeError):
    """Something of the engine's was still running or mounted once it had cleaned up."""


def base_images(dockerfile: Path) -> list[str]:
    """The images a Dockerfile's FROM lines name (its own stages and `scratch` left out)."""
    names: list[str] = []
    stages = {"scratch"}
    for line in dockerfile.read_text().splitlines():
        if match := FROM_LINE.match(line):
            image, stage = match.groups()
            if image not in stages | set(names):
                names.append(image)
            stages.add(stage or image)
    return names


@dataclass
class Podman:
    """podman with its state under `state` (its run folder in `runroot`); builds mount `ca_bundle`
    over the images' CA store."""

    state: Path
    runroot: Path
    """Short: the overlay storage refuses a run folder's path of more than 50 characters."""
    ca_bundle: Path

    @property
    def env(self) -> dict[str, str]:
        # buildah keeps RUN --mount=type=cache folders under TMPDIR.
        return {"CONTAINERS_CONF": str(self.state / "containers.conf"), "TMPDIR": str(self.tmp)}

    @property
    def tmp(self) -> Path:
        return self.state / "tmp"

    def __call__(
        self, *args: str | os.PathLike[str], check: bool = True, timeout: float = 600
    ) -> CompletedProcess[str]:
        storage = ["--root", str(self.state / "storage"), "--runroot", str(self.runroot)]
        return run(["podman", *storage, *args], env=self.env, check=check, timeout=timeout)

    def configure(self) -> None:
        """Write the engine's configuration and check that it runs here."""
        self.tmp.mkdir(parents=True, exist_ok=True)
        nofile = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
        hard_nproc = resource.getrlimit(resource.RLIMIT_NPROC)[1]
        nproc = NPROC if hard_nproc == resource.RLIM_INFINITY else min(hard_nproc, NPROC)
        settings: dict[str, dict[str, object]] = {
            # podman's default ulimits exceed what some machines allow (setrlimit: not permitted).
            "containers": {
                "default_ulimits": [f"nofile={nofile}:{nofile}", f"nproc={nproc}:{nproc}"]
            },
            # crun refuses some kernels' cgroup layouts; runc runs on them all.
            "engine": {
                "runtime": "runc",
                "cgroup_manager": "cgroupfs",
                "events_logger": "file",
                "events_logfile_path": str(self.state / "events.log"),
                "tmp_dir": str(self.tmp),
            },
            "network": {"network_config_dir": str(self.state / "networks")},
        }
        (self.state / "containers.conf").write_text(
            "".join(
                f"[{table}]\n"
                + "".join(f"{key} = {json.dumps(value)}\n" for key, value in keys.items())
                for table, keys in settings.items()
            )
        )
        probe = self(
            "run", "--rm", "--network=host", self.debian_image(PROBE_RELEASE), "true", check=False
        )
        if probe.returncode != 0:
            raise EngineUnavailableError(
                f"podman cannot run a container here ({INSTALL_HINT}):\n{probe.stderr}"
            )

    def has_image(self, name: str) -> bool:
        return self("image", "exists", name, check=False).returncode == 0

    def provide_bases(self, dockerfile: Path) -> None:
        """A stand-in for every image the Dockerfile's FROM lines name that is not here yet."""
        for name in base_images(dockerfile):
            if self.has_image(name):
                continue
            if python := OFFICIAL_PYTHON.fullmatch(name):
                self.python_image(name, python_version=python[1], release=python[2])
            elif uv := OFFICIAL_UV.fullmatch(name):
                self.uv_image(uv[1])
            else:
                raise ValueError(f"no stand-in is made for {name} (FROM in {dockerfile})")

    def debian_image(self, release: str) -> str:
        """Debian `release`'s stand-in root filesystem, as a local image."""
        rootfs = debian_rootfs(release)
        name = f"localhost/stand-in:{rootfs.stem}"
        if not self.has_image(name):
            self("import", "--change=ENV LANG=C.UTF-8", '--change=CMD ["python3"]', rootfs, name)
        return name

    def python_image(self, name: str, *, python_version: str, release: str) -> None:
        if DEBIAN_PYTHON.get(release) != python_version:
            raise ValueError(
                f"no stand-in for {name}: Debian {release}'s Python is "
                f"{DEBIAN_PYTHON.get(release, 'unknown here')}, not {python_version}"
            )
        self("tag", self.debian_image(release), f"docker.io/library/{name}")

    def uv_image(self, version: str) -> str:
        name = f"ghcr.io/astral-sh/uv:{version}"
        if self.has_image(name):
            return name
        found = tool_version("uv")
        if found != version:
            raise ValueError(f"no stand-in for {name}: this environment's uv is {found}")
        context = self.tmp / "uv-image"
        context.mkdir(exist_ok=True)
        for binary in ("uv", "uvx"):
            shutil.copy2(tool_path(binary), context / binary)
        (context / "Dockerfile").write_text('FROM scratch\nCOPY uv uvx /\nENTRYPOINT ["/uv"]\n')
        self("build", "--network=host", "--tag", name, context)
        shutil.rmtree(context)
        return name

    def build(  # noqa: PLR0913 - podman build's options the callers use
        self,
        context: Path,
        tag: str,
        *,
        build_args: Mapping[str, str] | None = None,
        secrets: Mapping[str, Path] | None = None,
        target: str | None = None,
        cache: bool = True,
        check: bool = True,
    ) -> CompletedProcess[str]:
        """`podman build` of context/Dockerfile, its base images stood in for (docker's image
        format keeps the HEALTHCHECK); without `cache`, every step runs again."""
        self.provide_bases(context / "Dockerfile")
        args = ["build", "--pull=never", "--network=host", "--format=docker", "--tag", tag]
        args += [f"--volume={self.ca_bundle}:{IMAGE_CA_BUNDLE}:ro"]
        args += [f"--build-arg={key}={value}" for key, value in (build_args or {}).items()]
        args += [f"--secret=id={key},src={path}" for key, path in (secrets or {}).items()]
        args += [f"--target={target}"] if target else []
        args += [] if cache else ["--no-cache"]
        return self(*args, context, check=check)

    def run(
        self, image: str, *command: str, env: Mapping[str, str] | None = None, check: bool = True
    ) -> CompletedProcess[str]:
        """A one-off container, as ECS runs it (read-only; removed when it exits)."""
        return self("run", "--rm", *AS_ECS_RUNS_IT, *env_options(env), image, *command, check=check)

    @contextmanager
    def started(
        self, image: str, *command: str, env: Mapping[str, str] | None = None
    ) -> Iterator[str]:
        """A container of the image, running in the background as ECS runs it; yields its id and
        removes it at the end."""
        container = self("run", "--detach", *AS_ECS_RUNS_IT, *env_options(env), image, *command)
        identifier = container.stdout.strip()
        try:
            yield identifier
        finally:
            self("rm", "--force", "--time=0", identifier)

    def inspect(self, name: str) -> dict[str, Any]:
        document: list[dict[str, Any]] = json.loads(self("inspect", name).stdout)
        return document[0]

    def logs(self, container: str) -> str:
        result = self("logs", container, check=False)
        return result.stdout + result.stderr

    def wait_until_answering(self, container: str, url: str, seconds: float = 30) -> None:
        """Return once `url` answers 2xx; raise, with the container's logs, when it stops first or
        `seconds` pass."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(url, timeout=1):  # noqa: S310 - loopback only
                    return
            except OSError:
                state = self.inspect(container)["State"]
                if not state["Running"]:
                    break
                time.sleep(0.05)
        raise RuntimeError(f"{url} did not answer (container {container}):\n{self.logs(container)}")

    def close(self) -> None:
        """Remove every container and image, then check nothing of the engine's is left."""
        self("system", "reset", "--force", check=False)
        folders = [str(self.state), str(self.runroot)]
        mounts = Path("/proc/self/mountinfo").read_text().splitlines()
        leftovers = [f"mount: {line}" for line in mounts if any(f in line for f in folders)]
        for path in Path("/proc").glob("[0-9]*/cmdline"):
            command = _reads(path).replace(b"\0", b" ").decode(errors="replace")
            if any(folder in command for folder in folders):
                leftovers.append(f"process {path.parent.name}: {command}")
        for folder in folders:
            shutil.rmtree(folder, ignore_errors=True)
        if leftovers:
            raise EngineLeftoversError("\n".join(leftovers))


def _reads(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError:  # the process ended meanwhile
        return b""


def env_options(env: Mapping[str, str] | None) -> list[str]:
    return [f"--env={key}={value}" for key, value in (env or {}).items()]


def tool_path(name: str) -> str:
    found = shutil.which(name, path=tool_env()["PATH"])
    if found is None:
        raise EngineUnavailableError(f"`{name}` is not installed; {INSTALL_HINT}")
    return found


def tool_version(name: str) -> str:
    return run([tool_path(name), "--version"]).stdout.split()[1]


def debian_rootfs(release: str) -> Path:
    """Debian `release`'s root filesystem for the python stand-in, made once (a tar file)."""
    python_version = DEBIAN_PYTHON[release]
    hooks = [
        # Where the official image keeps its Python (the Dockerfiles name /usr/local/bin/pythonX.Y).
        *(
            f'ln -s /usr/bin/python{python_version} "$1/usr/local/bin/{name}"'
            for name in (f"python{python_version}", "python3", "python")
        ),
        # uv trusts the system's CA store, which each build replaces with the machine's bundle.
        'mkdir -p "$1/etc/uv" && echo "system-certs = true" > "$1/etc/uv/uv.toml"',
    ]
    options = [
        "--variant=minbase",
        f"--include={','.join(DEBIAN_PACKAGES)}",
        *(
            f"--dpkgopt=path-exclude=/usr/share/{folder}/*"
            for folder in ("doc", "info", "locale", "man")
        ),
        *(f"--customize-hook={hook}" for hook in hooks),
    ]
    recipe = hashlib.sha256(json.dumps([release, options]).encode()).hexdigest()[:12]
    rootfs = STAND_INS / f"debian-{release}-{recipe}.tar"
    if not rootfs.exists():
        STAND_INS.mkdir(parents=True, exist_ok=True)
        partial = rootfs.with_suffix(f".{os.getpid()}.partial.tar")
        run([tool_path("mmdebstrap"), "--quiet", *options, release, partial], timeout=900)
        partial.replace(rootfs)
        for stale in STAND_INS.glob(f"debian-{release}-*.tar"):  # made by an older recipe
            if stale != rootfs and ".partial." not in stale.name:
                stale.unlink()
    return rootfs


@contextmanager
def podman_engine(state: Path, *, ca_bundle: Path | None = None) -> Iterator[Podman]:
    """podman with its state under `state` (created here), cleaned up at the end.

    Raises EngineUnavailableError, saying what to install, where it cannot run.
    """
    for name in TOOLS:
        tool_path(name)
    runroot = Path(tempfile.mkdtemp(prefix="podman-run-"))
    engine = Podman(state, runroot, ca_bundle or machine_ca_bundle())
    try:
        engine.configure()
        yield engine
    finally:
        engine.close()
