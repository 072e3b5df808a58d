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
import os
import re
import subprocess
import sys
import tempfile
import tomllib
import urllib.parse
import urllib.request
import zipfile
from pathlib import Path

from api_semver import ApiBreakError, breaking_changes, check_release
from simple_index import (
    IndexUnreadableError,
    add_to_index,
    normalized,
    project_files,
    read,
    uv_credentials,
)

ROOT = Path(__file__).resolve().parent.parent
INDEX_NAME = "private"
FINAL_RELEASE = re.compile(r"^\d+(\.\d+)*$")


class PublishError(Exception):
    """The library is not published; the message says why and what to do."""


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


def published_wheels(index: str, name: str) -> dict[str, str]:
    """The final releases of the project on the index: version -> its wheel's URL."""
    wheels = {}
    for filename, url in project_files(index, name, uv_credentials(INDEX_NAME)).items():
        parts = filename.removesuffix(".whl").split("-")
        wheel = filename.endswith(".whl") and normalized(parts[0]) == normalized(name)
        if wheel and FINAL_RELEASE.match(parts[1]):
            wheels[parts[1]] = url
    return wheels


def api_check(name: str, source: Path, previous_wheel: str, previous: str, current: str) -> str:
    """The API of the library's source against the previous release's wheel (api_semver)."""
    module = name.replace("-", "_")
    with tempfile.TemporaryDirectory() as scratch:
        wheel = Path(scratch) / "previous.whl"
        content = read(previous_wheel, uv_credentials(INDEX_NAME))
        if content is None:
            raise PublishError(f"{previous_wheel}: not on the index, though its page lists it.")
        wheel.write_bytes(content)
        with zipfile.ZipFile(wheel) as archive:
            archive.extractall(Path(scratch) / "tree")
        return check_release(
            name,
            previous,
            current,
            lambda: breaking_changes(module, Path(scratch) / "tree", source),
        )


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
            local = Path(urllib.request.url2pathname(urllib.parse.urlsplit(index).path))
            add_to_index(local, str(project["name"]), files)
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
    except (PublishError, ApiBreakError, IndexUnreadableError) as error:
        print(f"publish-lib: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
