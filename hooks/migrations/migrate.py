"""Migration steps that `copier update` runs in a service, registered in copier.yml's `_migrations`.

    migrate.py rename-answer OLD NEW        before: an answer was renamed; keep the team's value
    migrate.py move-path FROM TO            after: a file (or folder) moved; carry the team's edits
    migrate.py keep-team-edits [--team-owned-json JSON]
                                            (default: copier.yml's team_owned_paths)
                                            after, on every update: the loss guard

Copier runs them with its own interpreter, in the service's folder, with the answers file still
recording the old version in `git show HEAD:.copier-answers.yml` (an update starts from a clean
working tree and commits nothing) and VERSION_FROM, VERSION_TO and STAGE in the environment.
Every step is idempotent: run again, it finds nothing left to do.

A file counts as edited by the team when its committed content differs from what the old template
version renders for the service's own recorded answers: the same comparison Copier's update makes.
The old version is rendered (once, into a temporary folder) only when an update removed a file.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import yaml

ANSWERS_FILE = ".copier-answers.yml"
KEPT_SUFFIX = ".team-edits"
"""Beside a file the template deleted, the team's version of it: `<path>.team-edits`."""
CONFLICT_LABELS = ("before updating", "last update", "after updating")
"""Copier's own labels for inline conflicts: editors and the pre-commit hooks know them."""


class MigrationError(RuntimeError):
    """A step cannot run here; the message says why and what to do."""


def say(message: str) -> None:
    print(f"[template migration] {message}", flush=True)


def git(*args: str, check: bool = True) -> subprocess.CompletedProcess[bytes]:
    result = subprocess.run(["git", *args], capture_output=True, check=False)  # noqa: S603
    if check and result.returncode != 0:
        raise MigrationError(f"git {' '.join(args)} failed: {result.stderr.decode().strip()}")
    return result


def committed(path: str) -> bytes | None:
    """The file as committed before the update began (None when it was not tracked)."""
    result = git("cat-file", "blob", f"HEAD:./{path}", check=False)
    return result.stdout if result.returncode == 0 else None


def in_index(path: str) -> bool:
    return bool(git("ls-files", "--cached", "--", path).stdout.strip())


def removed_by_update() -> list[str]:
    """Files tracked in git that the update deleted from the working tree.

    Copier refuses to update a dirty tree, so before the update every tracked file was present:
    whatever is missing now was removed by Copier (a file the template deleted or moved, or one
    whose answer-dependent name no longer renders).
    """
    listing = git("ls-files", "--deleted", "-z", "--", ".").stdout.decode()
    return sorted(path for path in listing.split("\0") if path)


def committed_answers(answers_file: str) -> dict[str, Any]:
    """The answers recorded before this update (the working copy may already be rewritten)."""
    text = committed(answers_file)
    if text is None:
        path = Path(answers_file)
        text = path.read_bytes() if path.is_file() else b""
    answers = yaml.safe_load(text) or {}
    if not isinstance(answers, dict):
        raise MigrationError(f"{answers_file} does not hold a mapping of answers")
    return answers


def render_old_version(answers_file: str, destination: Path) -> bool:
    """Render the service as the old template version did, for its recorded answers.

    Copier's own API, tasks skipped. False (with a message) when the old version cannot be
    rendered: then every removed file is treated as edited, which keeps too much, never too little.
    """
    answers = committed_answers(answers_file)
    source = str(answers.get("_src_path", ""))
    ref = str(answers.get("_commit") or os.environ.get("VERSION_FROM", ""))
    if source and "://" not in source and not Path(source).expanduser().is_absolute():
        source = str(Path(source).resolve())  # a relative _src_path is relative to the service
    data = {key: value for key, value in answers.items() if not key.startswith("_")}
    try:
        from copier import run_copy  # noqa: PLC0415 - imported only when a render is needed

        run_copy(
            source,
            destination,
            data=data,
            vcs_ref=ref or None,
            defaults=True,
            quiet=True,
            skip_tasks=True,
            unsafe=True,
            overwrite=True,
        )
    except Exception as error:  # noqa: BLE001 - whatever failed, the answer is "cannot compare"
        say(f"could not render the old template version {ref!r} ({error});")
        say("every file the update removed is treated as edited by the team")
        return False
    return True


class OldVersion:
    """The old version's files, rendered on first use: most updates remove nothing."""

    def __init__(self, answers_file: str, stack: ExitStack) -> None:
        self._answers_file = answers_file
        self._stack = stack
        self._root: Path | None = None
        self._rendered = False

    def file(self, path: str) -> bytes | None:
        """The file as the old version rendered it; None when it did not (or could not)."""
        if not self._rendered:
            self._rendered = True
            folder = Path(self._stack.enter_context(tempfile.TemporaryDirectory()))
            if render_old_version(self._answers_file, folder / "service"):
                self._root = folder / "service"
        if self._root is None:
            return None
        rendered = self._root / path
        return rendered.read_bytes() if rendered.is_file() else None

    def files_under(self, path: str) -> list[str]:
        if self.file(path) is not None:
            return [path]
        root = self._root
        if root is None or not (root / path).is_dir():
            return []
        return sorted(
            str(file.relative_to(root)) for file in (root / path).rglob("*") if file.is_file()
        )

    def edited(self, path: str, team: bytes) -> bool:
        """True unless the team's file is exactly what the old version rendered."""
        return team != self.file(path)


def expect_stage(step: str, stage: str) -> None:
    current = os.environ.get("STAGE")
    if current and current != stage:
        raise MigrationError(
            f"{step} runs in the {stage!r} stage of a migration, not {current!r}: fix its `when` "
            "in copier.yml's _migrations"
        )


def rename_answer(old: str, new: str, answers_file: str) -> None:
    """Before the update renders anything: the answer recorded as OLD is recorded as NEW.

    Copier reads the answers file again after the `before` migrations, so the new version sees
    the team's value under its new name instead of asking again or taking the default.
    """
    expect_stage("rename-answer", "before")
    path = Path(answers_file)
    lines = path.read_text().splitlines(keepends=True)
    header = "".join(line for line in lines if line.startswith("#"))
    answers = yaml.safe_load("".join(lines)) or {}
    if old not in answers:
        return
    value = answers.pop(old)
    if new in answers:
        say(f"answer {old!r} dropped: {new!r} is already recorded ({answers[new]!r})")
    else:
        answers[new] = value
        say(f"answer {old!r} renamed to {new!r} (value {value!r} kept)")
    body = yaml.safe_dump(answers, default_flow_style=False, allow_unicode=True, sort_keys=True)
    path.write_text(header + body)


def merge(team: bytes, base: bytes | None, template: bytes) -> tuple[bytes, int]:
    """3-way merge of the team's edits onto the template's new file; (content, conflicts)."""
    with tempfile.TemporaryDirectory(prefix="template-merge-") as folder:
        files = []
        for name, content in (("team", team), ("base", base or b""), ("template", template)):
            file = Path(folder) / name
            file.write_bytes(content)
            files.append(str(file))
        labels = [arg for label in CONFLICT_LABELS for arg in ("-L", label)]
        result = git("merge-file", "-p", *labels, *files, check=False)
        if result.returncode < 0:
            raise MigrationError(f"git merge-file failed: {result.stderr.decode().strip()}")
        return result.stdout, result.returncode


def tracked_under(path: str) -> list[str]:
    """`path` itself when it is a committed file, else the committed files below it."""
    listing = git("ls-tree", "-r", "--name-only", "-z", "HEAD", "--", f"./{path}").stdout
    return [item for item in listing.decode().split("\0") if item]  # relative to the service


def move_path(source: str, target: str, answers_file: str) -> None:
    """After the update: the template moved SOURCE to TARGET (a file or a folder).

    Copier renders TARGET as the template ships it and deletes SOURCE, edits and all. Here the
    team's edits of SOURCE are merged into TARGET (conflicts as inline markers, like Copier's),
    and a SOURCE the team had deleted stays deleted as TARGET.
    """
    expect_stage("move-path", "after")
    source, target = source.strip("/"), target.strip("/")
    with ExitStack() as stack:
        old = OldVersion(answers_file, stack)
        moved = tracked_under(source)
        for old_path in moved:
            new_path = target + old_path.removeprefix(source)
            if Path(old_path).exists() or not in_index(old_path):
                continue  # not removed by this update, or already carried over
            team = committed(old_path)
            if team is None or not old.edited(old_path, team):
                continue  # untouched: the template's new file stands
            destination = Path(new_path)
            if destination.is_file():
                content, conflicts = merge(team, old.file(old_path), destination.read_bytes())
            else:
                content, conflicts = team, 0
            destination.parent.mkdir(parents=True, exist_ok=True)
            destination.write_bytes(content)
            Path(f"{old_path}.rej").unlink(missing_ok=True)  # Copier's, for the file it deleted
            kept = Path(f"{old_path}{KEPT_SUFFIX}")  # the loss guard's, had it run first
            if kept.is_file() and kept.read_bytes() == team:
                kept.unlink()
            git("rm", "--cached", "--quiet", "--", old_path)  # handled: the loss guard skips it
            outcome = f"with {conflicts} conflict(s) to resolve" if conflicts else "cleanly"
            say(f"{old_path} moved to {new_path}; the team's edits were merged {outcome}")
        if moved != [source]:  # a folder, or a file the team deleted: some may be gone
            keep_deleted_across_move(source, target, old, set(moved))


def keep_deleted_across_move(source: str, target: str, old: OldVersion, kept: set[str]) -> None:
    """What the team had deleted from SOURCE stays deleted: remove what the update created."""
    for old_path in old.files_under(source):
        new_path = Path(target + old_path.removeprefix(source))
        if old_path not in kept and new_path.is_file() and committed(str(new_path)) is None:
            new_path.unlink()
            say(f"{new_path} not created: it replaces {old_path}, which the team had deleted")


def keep_team_edits(answers_file: str, team_owned: Sequence[str]) -> None:
    """After the update, on every update: no file the team edited is lost to a template deletion.

    For each file the update removed: a team-owned one (matching `team_owned`, the template's
    `_skip_if_exists` patterns) is restored where it was; any other one that the team had edited
    is kept beside its old path as `<path>.team-edits`, and the update says so.
    """
    expect_stage("keep-team-edits", "after")
    removed = removed_by_update()
    if not removed:
        return
    owned = matcher(team_owned)
    kept = []
    with ExitStack() as stack:
        old = OldVersion(answers_file, stack)
        for path in removed:
            team = committed(path)
            if team is None:
                continue
            if owned(path):
                git("checkout", "HEAD", "--", path)
                say(f"{path} restored: it is team-owned, and updates leave it alone")
            elif old.edited(path, team):
                kept_file = Path(f"{path}{KEPT_SUFFIX}")
                kept_file.parent.mkdir(parents=True, exist_ok=True)
                kept_file.write_bytes(team)
                Path(f"{path}.rej").unlink(missing_ok=True)  # Copier's, for the file it deleted
                kept.append(str(kept_file))
    if kept:
        say("the new template version deletes files the team had edited. The team's versions")
        say("are kept beside them: port what is still needed, then delete them.")
        for name in kept:
            say(f"  kept: {name}")


def matcher(patterns: Sequence[str]) -> Callable[[str], bool]:
    """A test of paths against gitignore-style patterns, as Copier matches `_skip_if_exists`."""
    if not patterns:
        return lambda _path: False
    import pathspec  # noqa: PLC0415 - Copier's own dependency; needed only here

    # Copier's own choice: pathspec 1.0 renamed the gitignore-style pattern factory.
    style = "gitignore" if int(pathspec.__version__.split(".")[0]) >= 1 else "gitwildmatch"
    spec = pathspec.PathSpec.from_lines(style, patterns)
    return lambda path: bool(spec.match_file(path))


def template_team_owned_paths() -> list[str]:
    """copier.yml's team_owned_paths, read from the template version being applied: passing them
    on the command line would have Copier echo the whole list on every update."""
    config = yaml.safe_load((Path(__file__).resolve().parents[2] / "copier.yml").read_text())
    return list(config["team_owned_paths"]["default"])


def parse(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="migrate.py", description=__doc__.split("\n")[0])
    parser.add_argument("--answers-file", default=ANSWERS_FILE)
    steps = parser.add_subparsers(dest="step", required=True)
    rename = steps.add_parser("rename-answer", help="an answer was renamed OLD -> NEW")
    rename.add_argument("old")
    rename.add_argument("new")
    move = steps.add_parser("move-path", help="a file or folder moved FROM -> TO")
    move.add_argument("source", metavar="FROM")
    move.add_argument("target", metavar="TO")
    keep = steps.add_parser("keep-team-edits", help="the loss guard, after every update")
    keep.add_argument(
        "--team-owned-json",
        type=json.loads,
        metavar="JSON",
        help="team-owned path patterns, a JSON list (default: copier.yml's team_owned_paths)",
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse(sys.argv[1:] if argv is None else argv)
    try:
        if args.step == "rename-answer":
            rename_answer(args.old, args.new, args.answers_file)
        elif args.step == "move-path":
            move_path(args.source, args.target, args.answers_file)
        else:
            team_owned = args.team_owned_json
            if team_owned is None:
                team_owned = template_team_owned_paths()
            keep_team_edits(args.answers_file, team_owned)
    except MigrationError as error:
        print(f"[template migration] {args.step} failed: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
