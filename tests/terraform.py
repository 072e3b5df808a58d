"""The generated Terraform, read as data (python-hcl2), and the checkov release that checks it:
what test_terraform and test_background share."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import hcl2

CHECKOV = "checkov==3.3.30"


def unquote(value: Any) -> Any:
    """python-hcl2 keeps HCL's quotes on labels and strings; drop them to compare plain values."""
    if isinstance(value, dict):
        return {unquote(key): unquote(item) for key, item in value.items() if key != "__is_block__"}
    if isinstance(value, list):
        return [unquote(item) for item in value]
    if isinstance(value, str) and len(value) >= 2 and value[0] == value[-1] == '"':
        return value[1:-1]
    return value


def blocks(module: Path, kind: str) -> dict[str, dict[str, Any]]:
    """`{"aws_db_instance.database": {...attributes}}` for every block of a kind in the module."""
    found: dict[str, dict[str, Any]] = {}
    for path in sorted(module.glob("*.tf")):
        with path.open() as file:
            parsed = unquote(hcl2.load(file))
        for entry in parsed.get(kind, []):
            for type_name, named in entry.items():
                for name, body in named.items():
                    found[f"{type_name}.{name}"] = body
    return found
