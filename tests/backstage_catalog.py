"""catalog-info.yaml files as Backstage's software catalog reads them: every entity, its
placeholders (`$text`, `$json`, `$yaml`) resolved against the file's folder, validated against
Backstage's published entity schemas and the formats its default policies check
(tests/backstage/README.md)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml
from jsonschema import Draft7Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT7

SCHEMAS = Path(__file__).parent / "backstage"
PLACEHOLDERS = {
    "$text": lambda text: text,
    "$json": json.loads,
    "$yaml": yaml.safe_load,
}
"""How Backstage's PlaceholderProcessor reads the file each placeholder names."""


def load_schemas() -> tuple[Registry[Any], dict[str, dict[str, Any]], dict[str, Any]]:
    """The registry of every vendored schema (by its $id), the schema of each kind, and the
    policies' schema."""
    documents = [json.loads(path.read_text()) for path in sorted(SCHEMAS.rglob("*.schema.json"))]
    registry: Registry[Any] = Registry().with_resources(
        (document["$id"], Resource.from_contents(document, default_specification=DRAFT7))
        for document in documents
    )
    kinds = {
        kind: document
        for document in documents
        for part in document.get("allOf", [])
        for kind in part.get("properties", {}).get("kind", {}).get("enum", [])
    }
    policies = next(document for document in documents if document["$id"] == "EntityPolicies")
    return registry, kinds, policies


REGISTRY, KIND_SCHEMAS, POLICIES = load_schemas()


def resolve_placeholders(value: Any, folder: Path) -> Any:
    if isinstance(value, dict):
        if len(value) == 1 and next(iter(value)) in PLACEHOLDERS:
            ((placeholder, target),) = value.items()
            return PLACEHOLDERS[placeholder]((folder / target).read_text(encoding="utf-8"))
        return {key: resolve_placeholders(item, folder) for key, item in value.items()}
    if isinstance(value, list):
        return [resolve_placeholders(item, folder) for item in value]
    return value


def problems(entity: dict[str, Any]) -> list[str]:
    """Why Backstage would refuse the entity; none when it accepts it."""
    kind = entity.get("kind")
    if kind not in KIND_SCHEMAS:
        return [f"kind {kind!r} is none of Backstage's kinds ({', '.join(sorted(KIND_SCHEMAS))})"]
    found = []
    for schema in (KIND_SCHEMAS[kind], POLICIES):
        validator = Draft7Validator(schema, registry=REGISTRY)
        found += [
            f"{kind} {'.'.join(map(str, error.absolute_path)) or '(root)'}: {error.message}"
            for error in validator.iter_errors(entity)
        ]
    return found


def read_entities(path: Path) -> list[dict[str, Any]]:
    """The file's entities, placeholders resolved; an AssertionError naming what Backstage would
    refuse."""
    documents = [doc for doc in yaml.safe_load_all(path.read_text()) if doc is not None]
    entities = [resolve_placeholders(document, path.parent) for document in documents]
    refused = [problem for entity in entities for problem in problems(entity)]
    assert not refused, f"{path}: " + "; ".join(refused)
    return entities


def entity_ref(entity: dict[str, Any]) -> str:
    """The entity's reference as Backstage writes it: kind:namespace/name."""
    namespace = entity["metadata"].get("namespace", "default")
    return f"{entity['kind'].lower()}:{namespace}/{entity['metadata']['name']}"


def location_targets(path: Path) -> list[Path]:
    """The files a Location entity's targets name (relative ones, globs included), from its
    folder."""
    (location,) = [entity for entity in read_entities(path) if entity["kind"] == "Location"]
    patterns = [*location["spec"].get("targets", []), location["spec"].get("target")]
    return sorted(found for pattern in patterns if pattern for found in path.parent.glob(pattern))
