"""template/openapi.json.jinja, the openapi.json a new service starts with (so its first
`make check` passes without running the app during `copier copy`): the document a service
generated with the defaults serves, its title made the service's name again.

    make openapi-seed

after a change to the template's routes or to what the core writes into the document;
tests/test_catalog.py fails until then.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from harness.commands import REPO_ROOT, find_python, run
from harness.core_index import publish_core
from harness.generate import SERVICE_NAME, copy
from harness.template_repo import current_version, snapshot

SEED = REPO_ROOT / "template" / "openapi.json.jinja"
PYTHON = "3.11"
"""copier.yml's default python_version."""


def seed_text(exported: str) -> str:
    """The exported document of the service named SERVICE_NAME, as the template's seed."""
    title = f'"title": "{SERVICE_NAME}"'
    if exported.count(title) != 1:
        raise ValueError(f"the exported document names its title other than once as {title}")
    return exported.replace(title, '"title": "{{ service_name }}"')


def main() -> None:
    interpreter = find_python(PYTHON)
    if interpreter is None:
        raise SystemExit(f"Python {PYTHON} is needed to generate the service that serves the seed")
    with tempfile.TemporaryDirectory(prefix="openapi-seed-") as scratch:
        work = Path(scratch)
        index_url = publish_core(work / "index", work)
        template = snapshot(work / "template", tag=current_version())
        service = work / SERVICE_NAME
        env = {"UV_PYTHON": interpreter}
        copy(template, service, {"core_index_url": index_url}, env=env)
        run(["make", "openapi"], cwd=service, env=env)
        SEED.write_text(seed_text((service / "openapi.json").read_text(encoding="utf-8")))
    print(f"Written: {SEED.relative_to(REPO_ROOT)}")


if __name__ == "__main__":
    main()
