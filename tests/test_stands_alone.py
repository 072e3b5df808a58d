"""The repository stands alone: nothing in it reads a path outside its own tree.

A user clones the template from their git host with nothing beside the clone, so a test, script,
default or document that names a sibling folder (such as the shared notes beside our own clones)
or an absolute path of the machine it was written on works here and fails there. `.ci/run` proves
the whole suite passes from a clone with no sibling folder; this test names the offending lines
before that.
"""

from __future__ import annotations

import re
from pathlib import Path

from harness.commands import REPO_ROOT, run

SIBLING = re.compile(r"\.\./+shared\b|parents?\[\d+\]\.parent\s*/\s*[\"']shared[\"']")


def tracked_text_files(root: Path) -> list[Path]:
    listed = run(["git", "ls-files", "-z"], cwd=root).stdout.split("\0")
    files = [root / name for name in listed if name]
    return [path for path in files if path.is_file() and b"\0" not in path.read_bytes()[:8192]]


def outside_references(root: Path) -> list[str]:
    machine_paths = {str(root.resolve()), str(root.resolve().parent) + "/"}
    found = []
    for path in tracked_text_files(root):
        for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
            if SIBLING.search(line) or any(prefix in line for prefix in machine_paths):
                found.append(f"{path.relative_to(root)}:{number}: {line.strip()}")
    return found


def test_no_file_names_a_path_outside_the_repository() -> None:
    found = outside_references(REPO_ROOT)
    assert not found, "these lines name a path outside the repository:\n" + "\n".join(found)


def test_the_guard_finds_a_sibling_folder_and_a_machine_path(tmp_path: Path) -> None:
    sibling = "../" + "shared"
    run(["git", "init", "-q"], cwd=tmp_path)
    (tmp_path / "conftest.py").write_text(f'SCHEMA = "{sibling}/jsonapi/schema.json"\n')
    (tmp_path / "ok.py").write_text('SCHEMA = "schemas/jsonapi.json"\n')
    (tmp_path / "Makefile").write_text(f"data:\n\tcp {tmp_path.resolve()}/x y\n")
    (tmp_path / "paths.py").write_text(f'HOME = "{tmp_path.resolve().parent}/elsewhere"\n')
    run(["git", "add", "."], cwd=tmp_path)

    found = outside_references(tmp_path)

    assert sorted(line.split(":")[0] for line in found) == ["Makefile", "conftest.py", "paths.py"]
