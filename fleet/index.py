"""The newest release of a package on a PEP 503 ("simple API") index that a version range allows.

Reads the same indexes uv does: https:// (credentials from the environment, under the names uv
reads for the index, UV_INDEX_<NAME>_USERNAME and UV_INDEX_<NAME>_PASSWORD) and file://.
"""

from __future__ import annotations

import base64
import os
import re
import urllib.parse
import urllib.request
from html.parser import HTMLParser
from pathlib import Path

from packaging.specifiers import SpecifierSet
from packaging.utils import (
    InvalidSdistFilename,
    InvalidWheelFilename,
    canonicalize_name,
    parse_sdist_filename,
    parse_wheel_filename,
)
from packaging.version import Version

TIMEOUT_SECONDS = 30


class IndexUnreadableError(Exception):
    """The index could not be read."""


class _Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.names: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        href = dict(attrs).get("href")
        if tag == "a" and href:
            path = urllib.parse.urlsplit(href).path
            self.names.append(urllib.parse.unquote(path.rsplit("/", 1)[-1]))


def credentials_variable(index_name: str, part: str) -> str:
    """The environment variable uv reads an index's credential part from."""
    return f"UV_INDEX_{re.sub(r'[^A-Z0-9]', '_', index_name.upper())}_{part}"


def project_page(index_url: str, package: str, index_name: str | None = None) -> str:
    """The HTML of the package's page on the index (a path is a local index, as uv reads it)."""
    if index_url.startswith("/"):
        index_url = Path(index_url).as_uri()
    url = index_url.rstrip("/") + f"/{canonicalize_name(package)}/"
    if url.startswith("file://"):
        folder = Path(urllib.request.url2pathname(urllib.parse.urlsplit(url).path))
        try:
            return (folder / "index.html").read_text()
        except OSError as error:
            raise IndexUnreadableError(f"{url}: {error.strerror}") from error
    if not url.startswith("https://"):
        raise IndexUnreadableError(f"{url}: only https:// and file:// indexes are read")
    request = urllib.request.Request(url, headers={"Accept": "text/html"})  # noqa: S310 - https
    if index_name:
        username = os.environ.get(credentials_variable(index_name, "USERNAME"))
        password = os.environ.get(credentials_variable(index_name, "PASSWORD"))
        if username or password:
            token = base64.b64encode(f"{username or ''}:{password or ''}".encode()).decode()
            request.add_header("Authorization", f"Basic {token}")
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT_SECONDS) as response:  # noqa: S310 - https
            return str(response.read().decode())
    except OSError as error:
        raise IndexUnreadableError(f"{url}: {error}") from error


def versions(page: str, package: str) -> set[Version]:
    """The versions the project page holds a wheel or an sdist of."""
    links = _Links()
    links.feed(page)
    found: set[Version] = set()
    for filename in links.names:
        try:
            if filename.endswith(".whl"):
                name, version, *_ = parse_wheel_filename(filename)
            else:
                name, version = parse_sdist_filename(filename)
        except (InvalidWheelFilename, InvalidSdistFilename):
            continue
        if name == canonicalize_name(package):
            found.add(version)
    return found


def newest_allowed(
    index_url: str, package: str, allowed: str, index_name: str | None = None
) -> Version | None:
    """The newest final release on the index within the range, or None when none is."""
    specifier = SpecifierSet(allowed)
    candidates = list(
        specifier.filter(versions(project_page(index_url, package, index_name), package))
    )
    return max(candidates, default=None)
