"""The error message for a document the fast validator rejected, worded by jsonschema (slow)."""

import os
from collections.abc import Iterable

from jsonschema import Draft4Validator
from jsonschema.exceptions import best_match
from referencing import Registry
from referencing.jsonschema import DRAFT4

from ocirun.schema.validator import SCHEMA_DIR, load_schema


def registry() -> Registry:
    """Every vendored schema, under its file name: the base its relative `$ref`s resolve against."""
    names = sorted(name for name in os.listdir(SCHEMA_DIR) if name.endswith(".json"))
    return Registry().with_resources(
        (name, DRAFT4.create_resource(load_schema(name))) for name in names
    )


def first_error(ref: str, instance: object) -> str | None:
    """jsonschema's best error for `instance` as "path: problem", or None if it is valid."""
    validator = Draft4Validator({"$ref": ref}, registry=registry())
    error = best_match(validator.iter_errors(instance))
    if error is None:
        return None
    path = format_path(error.absolute_path)
    return f"{path}: {error.message}" if path else error.message


def format_path(parts: Iterable[str | int]) -> str:
    """A JSON path as `mounts[2].destination`."""
    text = ""
    for part in parts:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else part
    return text
