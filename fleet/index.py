"""The newest release of a package on a PEP 503 ("simple API") index that a version range allows.

The index is read by fleet.simple_index as uv reads it: https:// (with the credentials uv reads
for the index, UV_INDEX_<NAME>_USERNAME and UV_INDEX_<NAME>_PASSWORD), file:// or a path.
"""

from __future__ import annotations

from collections.abc import Iterable

from packaging.specifiers import SpecifierSet
from packaging.utils import (
    InvalidSdistFilename,
    InvalidWheelFilename,
    canonicalize_name,
    parse_sdist_filename,
    parse_wheel_filename,
)
from packaging.version import Version

from fleet.simple_index import IndexUnreadableError, project_files, uv_credentials


def versions(filenames: Iterable[str], package: str) -> set[Version]:
    """The versions of the package that the files are a wheel or an sdist of."""
    found: set[Version] = set()
    for filename in filenames:
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
    """The newest final release on the index within the range, or None when none is; an index
    that holds no file of the package at all cannot be the one the service's lock came from."""
    credentials = None if index_name is None else uv_credentials(index_name)
    files = project_files(index_url, package, credentials)
    if not files:
        raise IndexUnreadableError(f"{index_url}: no {package} on this index")
    return max(SpecifierSet(allowed).filter(versions(files, package)), default=None)
