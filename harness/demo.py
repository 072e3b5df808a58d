"""The main job: generate a service with the defaults and show it working end to end.

`make demo` runs this. It publishes the reference core to a local index that stands in for
CodeArtifact, generates a service from a tagged snapshot of this template, installs it, runs the
service's own checks, then serves it and makes a few JSON:API requests. Everything lands in .demo/.
"""

from __future__ import annotations

import json
import shutil
import urllib.error
import urllib.request

from harness.commands import REPO_ROOT, run, tool_env
from harness.core_index import publish_core
from harness.generate import copy
from harness.postgres import free_port
from harness.serve import serving
from harness.template_repo import current_version, snapshot

DEMO_DIR = REPO_ROOT / ".demo"


def step(title: str) -> None:
    print(f"\n==> {title}", flush=True)


def request(
    url: str, *, token: str, method: str = "GET", body: object = None
) -> tuple[int, object]:
    data = json.dumps(body).encode() if body is not None else None
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/vnd.api+json"}
    req = urllib.request.Request(url, data=data, method=method, headers=headers)  # noqa: S310
    try:
        with urllib.request.urlopen(req, timeout=5) as response:  # noqa: S310 - loopback only
            return response.status, json.load(response)
    except urllib.error.HTTPError as error:
        return error.code, json.load(error)


def main() -> None:
    shutil.rmtree(DEMO_DIR, ignore_errors=True)
    DEMO_DIR.mkdir()

    step("Publishing the reference core to a local index (stands in for CodeArtifact)")
    index_url = publish_core(DEMO_DIR / "index", DEMO_DIR / "build")
    print(f"index: {index_url}")

    version = current_version()
    step(f"Snapshotting the template as a git repository tagged {version}")
    template = snapshot(DEMO_DIR / "template", tag=version)

    step("copier copy --defaults (post-copy tasks: git init, uv lock, first commit)")
    service = DEMO_DIR / "orders"
    print(copy(template, service, {"core_index_url": index_url}).stdout.strip())

    step("The service's own checks, as its CI runs them")
    run(["uv", "sync", "--locked"], cwd=service)
    for check in (["ruff", "check"], ["ruff", "format", "--check"], ["mypy"], ["pytest", "-q"]):
        output = run(["uv", "run", "--locked", *check], cwd=service).stdout.strip().splitlines()
        print(f"$ {' '.join(check)}\n  {output[-1] if output else 'ok'}")

    step("Serving it and making requests")
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    with serving(
        ["uv", "run", "--locked", "python", "-m", "orders"],
        cwd=service,
        env=tool_env({"HTTP_PORT": str(port)}),
        base_url=base_url,
        log=DEMO_DIR / "orders.log",
    ):
        token = run(
            [
                "uv",
                "run",
                "--locked",
                "python",
                "-c",
                "from orders.settings import get_settings\n"
                "from smplcore.testing import make_account_token\n"
                "print(make_account_token(get_settings().core_settings(), account_id='acct-demo'))",
            ],
            cwd=service,
        ).stdout.strip()
        widget = {"data": {"type": "widgets", "attributes": {"name": "First widget"}}}
        for method, path, body in (
            ("GET", "/livez", None),
            ("POST", "/v1/widgets", widget),
            ("GET", "/v1/widgets", None),
        ):
            status, document = request(f"{base_url}{path}", token=token, method=method, body=body)
            print(f"$ {method} {path} -> {status}\n{json.dumps(document, indent=2)}")
    step(f"Done: the generated service is in {service}")


if __name__ == "__main__":
    main()
