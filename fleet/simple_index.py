"""PEP 503 ("simple API") package indexes: the one reader and writer of their pages.

Read as uv reads an index: https:// (with HTTP basic credentials when there are any), file://, or
a path (a local index: a folder per project holding the files and their `index.html`). Written
as a static file:// index, such as `fleet test-core` serves its candidate from.

Standard library only, for everything that reads pages: the fleet (fleet/index.py,
fleet/candidate.py), a workspace's `make publish-lib` (a workspace's tools/simple_index.py is
this file: workspace/tools/simple_index.py links to it, and Copier copies it into every
workspace, which has no fleet/) and the core's release on the runner's bare python3
(.github/scripts/release.py, which imports it from workspace/tools/ as it does api_semver.py).
"""

from __future__ import annotations

import base64
import hashlib
import html
import os
import re
import shutil
import urllib.error
import urllib.parse
import urllib.request
from html.parser import HTMLParser
from pathlib import Path

TIMEOUT_SECONDS = 60
HTTP_NOT_FOUND = 404


class IndexUnreadableError(Exception):
    """The index could not be read; the message names the URL and why."""


def normalized(name: str) -> str:
    """PEP 503's form of a project name: its folder on the index."""
    return re.sub(r"[-_.]+", "-", name).lower()


def index_url(location: str) -> str:
    """The index's URL (a path is a local index, as uv reads it)."""
    return Path(location).as_uri() if location.startswith("/") else location


def uv_credentials(index_name: str) -> tuple[str, str] | None:
    """The credentials uv reads for the index of that name, UV_INDEX_<NAME>_USERNAME and
    UV_INDEX_<NAME>_PASSWORD, when either is set."""
    variable = f"UV_INDEX_{re.sub(r'[^A-Z0-9]', '_', index_name.upper())}"
    username = os.environ.get(f"{variable}_USERNAME")
    password = os.environ.get(f"{variable}_PASSWORD")
    if not username and not password:
        return None
    return username or "", password or ""


def read(
    url: str, credentials: tuple[str, str] | None = None, *, accept: str = "*/*"
) -> bytes | None:
    """A page or a file of an index; None when the index has nothing there (a 404, no such
    file)."""
    if url.startswith("file://"):
        path = Path(urllib.request.url2pathname(urllib.parse.urlsplit(url).path))
        try:
            return path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as error:
            raise IndexUnreadableError(f"{url}: {error.strerror}") from error
    if not url.startswith("https://"):
        raise IndexUnreadableError(f"{url}: only https:// and file:// indexes are read")
    request = urllib.request.Request(url, headers={"Accept": accept})  # noqa: S310 - https
    if credentials is not None:
        token = base64.b64encode(":".join(credentials).encode()).decode()
        request.add_header("Authorization", f"Basic {token}")
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT_SECONDS) as response:  # noqa: S310
            return bytes(response.read())
    except urllib.error.HTTPError as error:
        if error.code == HTTP_NOT_FOUND:
            return None
        raise IndexUnreadableError(f"{url} answered {error.code} {error.reason}") from error
    except OSError as error:
        raise IndexUnreadableError(f"{url}: {error}") from error


class _Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.hrefs: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        href = dict(attrs).get("href")
        if tag == "a" and href:
            self.hrefs.append(href)


def project_files(
    index: str, project: str, credentials: tuple[str, str] | None = None
) -> dict[str, str]:
    """The files the index holds of a project, by file name: each one's URL (without the
    page's `#sha256=` fragment). Empty when the index has never seen the project."""
    page_url = f"{index_url(index).rstrip('/')}/{normalized(project)}/"
    local = page_url.startswith("file:")
    page = read(page_url + "index.html" if local else page_url, credentials, accept="text/html")
    links = _Links()
    links.feed((page or b"").decode())
    files = {}
    for href in links.hrefs:
        url = urllib.parse.urljoin(page_url, href.split("#", 1)[0])
        files[urllib.parse.unquote(urllib.parse.urlsplit(url).path.rsplit("/", 1)[-1])] = url
    return files


def add_to_index(root: Path, project: str, files: list[Path]) -> None:
    """Copy distribution files into a static index, and write the project's page (every file
    with its sha256) and the index's root page."""
    folder = root / normalized(project)
    folder.mkdir(parents=True, exist_ok=True)
    for file in files:
        shutil.copy2(file, folder / file.name)
    links = []
    for file in sorted(folder.iterdir()):
        if file.name != "index.html":
            digest = hashlib.sha256(file.read_bytes()).hexdigest()
            name = html.escape(file.name)
            links.append(f'<a href="{name}#sha256={digest}">{name}</a><br>')
    (folder / "index.html").write_text(_page(links))
    projects = sorted(path.name for path in root.iterdir() if path.is_dir())
    (root / "index.html").write_text(_page([f'<a href="{p}/">{p}</a><br>' for p in projects]))


def _page(links: list[str]) -> str:
    return "\n".join(["<!DOCTYPE html>", "<html><body>", *links, "</body></html>", ""])
