"""Validation against the spec's JSON schemas (state and features)."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT4


@cache
def validator(schema_dir: Path, name: str) -> jsonschema.Draft4Validator:
    resources = [
        (path.name, Resource.from_contents(json.loads(path.read_text()), DRAFT4))
        for path in schema_dir.glob("*.json")
    ]
    schema = json.loads((schema_dir / name).read_text())
    return jsonschema.Draft4Validator(schema, registry=Registry().with_resources(resources))


def schema_errors(spec_dir: Path | None, name: str, document: Any) -> list[str]:
    """Messages for each way document breaks schema/NAME; none when the schema is not at hand."""
    if spec_dir is None or not (spec_dir / "schema" / name).is_file():
        return []
    errors = validator(spec_dir / "schema", name).iter_errors(document)
    return [f"{'/'.join(map(str, e.absolute_path)) or '(top)'}: {e.message}" for e in errors]
