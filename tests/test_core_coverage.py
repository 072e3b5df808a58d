"""The shared core's own test suite, run as the package runs it: with its branch coverage gate.

The root run collects core/tests too (one test per case, in parallel); this runs them once more
under core/pyproject.toml's settings, where pytest-cov fails the run below 90% branch coverage.
"""

from __future__ import annotations

import re
import sys

from harness.commands import REPO_ROOT, run


def test_core_suite_meets_its_branch_coverage_gate() -> None:
    result = run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:xdist"],
        cwd=REPO_ROOT / "core",
        check=False,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    coverage = re.search(r"Total coverage: (\d+\.\d+)%", output)
    assert coverage, output
    assert float(coverage.group(1)) >= 90
