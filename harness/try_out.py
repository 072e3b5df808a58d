"""A try-out of the template without the organisation's private index (`make try`).

Builds the reference core into a local package index, as `make demo` does, and prints the
`copier copy` command that creates a service resolving the core from that index instead of
CodeArtifact. The index is a folder read through a file:// URL, so it serves this machine only.
"""

from __future__ import annotations

import argparse
import shlex
import shutil
from pathlib import Path

from harness.commands import REPO_ROOT
from harness.core_index import publish_core

TRY_DIR = REPO_ROOT / ".try"


def copy_command(index_url: str) -> str:
    """The `copier copy` line of a service whose core comes from the local index: this clone as
    the template, the service beside the clone (inside it, GitHub would not run its workflows)."""
    data = f"core_index_url={index_url}"
    arguments = ["--trust", "--data", data, str(REPO_ROOT), str(REPO_ROOT.parent / "orders")]
    return shlex.join(["uvx", "copier", "copy", *arguments])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--folder", type=Path, default=TRY_DIR, help="where the index is built")
    folder: Path = parser.parse_args(argv).folder
    shutil.rmtree(folder, ignore_errors=True)
    index_url = publish_core(folder / "index", folder / "build")
    print(
        f"The core is in a local index: {index_url}\n"
        "Create a service from this clone with the core from that index (uvx is in .tools/bin):\n\n"
        f"  {copy_command(index_url)}\n\n"
        "The service records that index, so it builds on this machine only; a real service gets\n"
        "the organisation's private index (README: Creating a service)."
    )


if __name__ == "__main__":
    main()
