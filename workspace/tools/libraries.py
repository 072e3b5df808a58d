"""Publishing a workspace library to the private index, for repositories outside the workspace
(README: Sharing a library outside the workspace): `make publish-lib LIB=money [TAG=...]`.

    libraries.py publish NAME [--tag lib/NAME/vX.Y.Z]

1. lib/NAME/pyproject.toml's version must be a final release (X.Y.Z) the index does not hold yet,
   and named by the tag when one is given;
2. its public API is compared with the newest version published before it (api_semver.py, the
   rule the shared core is released by): a break needs a major version;
3. `uv build --package NAME` builds its wheel and sdist;
4. they are uploaded to the index the core comes from (`[[tool.uv.index]]` "private", or the
   answers' core_index_url): `uv publish` to its upload URL (the simple API's, less `simple/`, as
   CodeArtifact has it) with uv's credentials for it (UV_INDEX_PRIVATE_USERNAME and _PASSWORD); a
   file:// index, a local one, gets the files and its pages written.

Run from the root's environment (`uv run`): the standard library, and griffe for the API check.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import html
import os
import re
import shutil
import subprocess
import sys
import tempfile
import tomllib
import urllib.parse
import urllib.request
import zipfile
from html.parser import HTMLParser
from pathlib import Path

from api_semver import ApiBreakError, breaking_changes, check_release

ROOT = Path(__file__).resolve().parent.parent
INDEX_NAME = "private"
FINAL_RELEASE = re.compile(r"^\d+(\.\d+)*$")
TIMEOUT_SECONDS = 60


class PublishError(Exception):
    """The library is not published; the message says why and what to do."""


class _Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.hrefs: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        href = dict(attrs).get("href")
        if tag == "a" and href:
            self.hrefs.append(href)


def normalized(name: str) -> str:
    """PEP 503's form of a project name: its folder on the index."""
    return re.sub(r"[-_.]+", "-", name).lower()


def release_key(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in version.split("."))


def index_url() -> str:
    """The simple API URL of the index the workspace's core comes from."""
    root = tomllib.loads((ROOT / "pyproject.toml").read_text())
    for index in root.get("tool", {}).get("uv", {}).get("index", []):
        if index.get("name") == INDEX_NAME:
            url = str(index["url"])
            return Path(url).as_uri() if url.startswith("/") else url  # a path: a local index
    answers = (ROOT / ".copier-answers.yml").read_text()
    found = re.search(r"^core_index_url: *['\"]?([^'\"\s]+)", answers, re.MULTILINE)
    if found is None:
        raise PublishError("No private index: pyproject.toml names none, nor do the answers.")
    return found[1]


def fetch(url: str) -> bytes:
    """A file of the index, file:// or https:// (with uv's credentials for the index)."""
    if url.startswith("file://"):
        path = Path(urllib.request.url2pathname(urllib.parse.urlsplit(url).path))
        return path.read_bytes() if path.exists() else b""
    request = urllib.request.Request(url)  # noqa: S310 - the workspace's own https index
    username = os.environ.get(f"UV_INDEX_{INDEX_NAME.upper()}_USERNAME")
    password = os.environ.get(f"UV_INDEX_{INDEX_NAME.upper()}_PASSWORD")
    if username or password:
        token = base64.b64encode(f"{username or ''}:{password or ''}".encode()).decode()
        request.add_header("Authorization", f"Basic {token}")
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT_SECONDS) as response:  # noqa: S310
            return bytes(response.read())
    except urllib.error.HTTPError as error:
        if error.code == 404:  # noqa: PLR2004 - an index that never saw the project
            return b""
        raise PublishError(f"{url}: {error}") from error
    except OSError as error:
        raise PublishError(f"{url}: {error}") from error


def published_wheels(index: str, name: str) -> dict[str, str]:
    """The final releases of the project on the index: version -> its wheel's URL."""
    page_url = f"{index.rstrip('/')}/{normalized(name)}/"
    links = _Links()
    links.feed(
        fetch(page_url + "index.html" if page_url.startswith("file:") else page_url).decode()
    )
    wheels = {}
    for href in links.hrefs:
        filename = urllib.parse.unquote(urllib.parse.urlsplit(href).path.rsplit("/", 1)[-1])
        parts = filename.removesuffix(".whl").split("-")
        wheel = filename.endswith(".whl") and normalized(parts[0]) == normalized(name)
        if wheel and FINAL_RELEASE.match(parts[1]):
            wheels[parts[1]] = urllib.parse.urljoin(page_url, href.split("#", 1)[0])
    return wheels


def api_check(name: str, source: Path, previous_wheel: str, previous: str, current: str) -> str:
    """The API of the library's source against the previous release's wheel (api_semver)."""
    module = name.replace("-", "_")
    with tempfile.TemporaryDirectory() as scratch:
        wheel = Path(scratch) / "previous.whl"
        wheel.write_bytes(fetch(previous_wheel))
        with zipfile.ZipFile(wheel) as archive:
            archive.extractall(Path(scratch) / "tree")
        return check_release(
            name,
            previous,
            current,
            lambda: breaking_changes(module, Path(scratch) / "tree", source),
        )


def add_to_file_index(index: str, name: str, files: list[Path]) -> None:
    """Copy the files into a local (file://) index and write the project's page and its root."""
    root = Path(urllib.request.url2pathname(urllib.parse.urlsplit(index).path))
    project = root / normalized(name)
    project.mkdir(parents=True, exist_ok=True)
    for file in files:
        shutil.copy2(file, project / file.name)

    def page(links: list[str]) -> str:
        return "<!DOCTYPE html>\n<html><body>\n" + "\n".join(links) + "\n</body></html>\n"

    listed = [file for file in sorted(project.iterdir()) if file.name != "index.html"]
    links = [
        f'<a href="{html.escape(file.name)}#sha256={hashlib.sha256(file.read_bytes()).hexdigest()}'
        f'">{html.escape(file.name)}</a><br>'
        for file in listed
    ]
    (project / "index.html").write_text(page(links))
    names = sorted(path.name for path in root.iterdir() if path.is_dir())
    (root / "index.html").write_text(page([f'<a href="{n}/">{n}</a><br>' for n in names]))


def uv(*args: str, env: dict[str, str] | None = None) -> None:
    command = ["uv", *args]
    print("+ " + " ".join(command), flush=True)
    environment = {key: value for key, value in os.environ.items() if key != "VIRTUAL_ENV"}
    done = subprocess.run(command, cwd=ROOT, env={**environment, **(env or {})}, check=False)  # noqa: S603
    if done.returncode != 0:
        raise PublishError(f"`{' '.join(command)}` failed (its output is above).")


def publish(name: str, tag: str | None) -> None:
    folder = ROOT / "lib" / name
    if not (folder / "pyproject.toml").is_file():
        raise PublishError(f"No library lib/{name}/ (make lib NAME={name} creates one).")
    project = tomllib.loads((folder / "pyproject.toml").read_text())["project"]
    version = str(project["version"])
    if not FINAL_RELEASE.match(version):
        raise PublishError(f"lib/{name} is at {version}: publish final releases only (X.Y.Z).")
    if tag is not None and tag != f"lib/{name}/v{version}":
        raise PublishError(
            f"The tag {tag} does not name lib/{name}'s version: lib/{name}/v{version}."
        )
    index = index_url()
    wheels = published_wheels(index, str(project["name"]))
    if version in wheels:
        raise PublishError(
            f"{name} {version} is on the index already: raise the version in lib/{name}/"
            "pyproject.toml (a fix is a patch, an addition a minor, a break a major)."
        )
    earlier = sorted((v for v in wheels if release_key(v) < release_key(version)), key=release_key)
    if earlier:
        print(api_check(name, folder / "src", wheels[earlier[-1]], earlier[-1], version))
    else:
        print(f"{name} {version} is its first release on the index: nothing to compare with.")
    with tempfile.TemporaryDirectory() as scratch:
        uv("build", "--package", str(project["name"]), "--out-dir", scratch)
        files = sorted([*Path(scratch).glob("*.whl"), *Path(scratch).glob("*.tar.gz")])
        if index.startswith("file://"):
            add_to_file_index(index, str(project["name"]), files)
        else:
            credentials = {
                "UV_PUBLISH_USERNAME": os.environ.get("UV_INDEX_PRIVATE_USERNAME", ""),
                "UV_PUBLISH_PASSWORD": os.environ.get("UV_INDEX_PRIVATE_PASSWORD", ""),
            }
            upload = re.sub(r"simple/?$", "", index)
            uv(
                "publish",
                "--publish-url",
                upload,
                "--check-url",
                index,
                *map(str, files),
                env=credentials,
            )
    print(f"Published {name} {version} to {index}.")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    publishing = commands.add_parser("publish", help="publish lib/NAME to the private index")
    publishing.add_argument("name")
    publishing.add_argument("--tag", help="the tag that asks for it: lib/NAME/vX.Y.Z")
    args = parser.parse_args(argv)
    try:
        publish(args.name, args.tag)
    except (PublishError, ApiBreakError) as error:
        print(f"publish-lib: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
