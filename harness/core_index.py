"""A local package index holding the reference core, as CodeArtifact would serve it.

The index is a static PEP 503 ("simple API") tree read through a file:// URL: uv speaks the same
protocol to it as to CodeArtifact, and the generated service's explicit-index configuration is
exercised unchanged.
"""

from __future__ import annotations

import base64
import os
import re
import secrets
import shutil
import ssl
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import trustme

from fleet.simple_index import add_to_index
from harness.commands import REPO_ROOT, run

CORE_PROJECT = REPO_ROOT / "core"


def build_core(out_dir: Path, project: Path = CORE_PROJECT) -> list[Path]:
    """Build the core's wheel and sdist with `uv build`, as the release workflow does."""
    out_dir.mkdir(parents=True, exist_ok=True)
    run(["uv", "build", "--quiet", "--out-dir", out_dir, project])
    return sorted(out_dir.glob("*.whl")) + sorted(out_dir.glob("*.tar.gz"))


def publish_core(index_root: Path, work_dir: Path, distribution: str = "smplkit-core") -> str:
    """Build the core and publish it to a local index; return the index's file:// URL."""
    add_to_index(index_root, distribution, build_core(work_dir / "dist"))
    return index_root.resolve().as_uri()


NEW_RESPONSE = "Too Many Requests"
DECLARES_A_NEW_RESPONSE = {
    "src/smplcore/openapi.py": (
        '    errors["406"] = "Not Acceptable"\n',
        f'    errors["406"] = "Not Acceptable"\n    errors["429"] = "{NEW_RESPONSE}"\n',
    ),
}
"""A compatible core change (core_variant's replacements) that changes the OpenAPI document of
every service: each operation the core describes declares a 429 as well."""


def core_variant(
    work_dir: Path, version: str, replacements: dict[str, tuple[str, str]] | None = None
) -> Path:
    """A copy of the core at another version, with text replaced in some of its files
    (`{"src/smplcore/app.py": (old, new)}`): a release the tests can publish next to others."""
    project = work_dir / f"core-{version}"
    shutil.copytree(
        CORE_PROJECT,
        project,
        ignore=shutil.ignore_patterns(".venv", "dist", "__pycache__", "*_cache", ".coverage"),
    )
    edits = {
        "pyproject.toml": (
            _version_line(CORE_PROJECT / "pyproject.toml"),
            f'version = "{version}"',
        ),
        **(replacements or {}),
    }
    for relative, (old, new) in edits.items():
        path = project / relative
        text = path.read_text()
        if old not in text:
            raise ValueError(f"{relative} of the core does not contain {old!r}")
        path.write_text(text.replace(old, new, 1))
    return project


def publish_core_versions(
    index_root: Path,
    work_dir: Path,
    versions: dict[str, dict[str, tuple[str, str]]],
    distribution: str = "smplkit-core",
) -> str:
    """Publish several versions of the core (each with its replacements, see `core_variant`) to
    one local index; return the index's file:// URL."""
    for version, replacements in versions.items():
        project = core_variant(work_dir, version, replacements)
        add_to_index(index_root, distribution, build_core(work_dir / f"dist-{version}", project))
    return index_root.resolve().as_uri()


def _version_line(pyproject: Path) -> str:
    match = re.search(r'^version = "[^"]+"$', pyproject.read_text(), re.MULTILINE)
    if match is None:
        raise ValueError(f"{pyproject} has no version line")
    return match[0]


@contextmanager
def serving_index(
    root: Path, password: str, ssl_context: ssl.SSLContext | None = None
) -> Iterator[str]:
    """The index at `root` served on a free loopback port to the user aws with `password` only,
    as CodeArtifact serves it (over TLS with `ssl_context`, under a path of its own); yields its
    URL.

    The path is new for every server: uv caches an index's pages by URL, across runs, and a later
    server on the same port must never be answered from an earlier one's pages (a lock made
    from another run's core).
    """
    expected = "Basic " + base64.b64encode(f"aws:{password}".encode()).decode()
    prefix = f"/{secrets.token_hex(8)}/"

    class Handler(SimpleHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.headers.get("Authorization") != expected:
                self.send_error(401, "Unauthorized")
                return
            if not self.path.startswith(prefix):
                self.send_error(404, "Not Found")
                return
            self.path = self.path.removeprefix(prefix[:-1])
            super().do_GET()

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - the base's name
            """Quiet."""

    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(Handler, directory=str(root)))
    if ssl_context is not None:
        server.socket = ssl_context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        scheme = "https" if ssl_context else "http"
        yield f"{scheme}://127.0.0.1:{server.server_address[1]}{prefix}"
    finally:
        server.shutdown()
        server.server_close()


@dataclass
class PrivateIndex:
    """An index served as CodeArtifact serves it: over HTTPS, to the user aws with a password."""

    url: str
    password: str
    ca_bundle: Path
    """This machine's CA bundle and the CA that signed the index's certificate."""
    password_file: Path
    """The password alone in a file: what a build's secret reads."""

    @property
    def env(self) -> dict[str, str]:
        """What uv needs to install from the index (as the generated services name it)."""
        return {
            "SSL_CERT_FILE": str(self.ca_bundle),
            "UV_INDEX_PRIVATE_USERNAME": "aws",
            "UV_INDEX_PRIVATE_PASSWORD": self.password,
        }


def machine_ca_bundle() -> Path:
    """The CA bundle this machine's TLS clients trust (SSL_CERT_FILE, or OpenSSL's default)."""
    paths = ssl.get_default_verify_paths()
    return Path(os.environ.get("SSL_CERT_FILE") or paths.cafile or paths.openssl_cafile)


@contextmanager
def serving_private_index(root: Path, folder: Path) -> Iterator[PrivateIndex]:
    """The index at `root` as CodeArtifact serves it, with a certificate authority and a
    password made here; their files go to `folder`."""
    authority = trustme.CA()
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    authority.issue_cert("127.0.0.1").configure_cert(context)
    ca_bundle = folder / "ca-bundle.pem"
    ca_bundle.write_bytes(machine_ca_bundle().read_bytes() + authority.cert_pem.bytes())
    password = secrets.token_urlsafe(24)
    password_file = folder / "index-password"
    password_file.write_text(password)
    with serving_index(root, password, context) as url:
        yield PrivateIndex(url, password, ca_bundle, password_file)
