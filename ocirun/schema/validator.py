"""A yes/no validator for the part of JSON Schema draft-04 that the OCI runtime-spec schemas use.

It interprets the vendored schema files (each parsed on first use) the way jsonschema's
Draft4Validator does: `$ref` replaces its sibling keywords, "integer" excludes floats and booleans,
minimum and maximum ignore booleans, `items` as a list leaves extra items free, and keywords not in
KEYWORDS are ignored. tests/test_schema.py checks that the schemas use no keyword beyond KEYWORDS,
no enum value other than strings (for which `in` compares as jsonschema does) and no pattern
without a predicate in patterns.py.
"""

import os

from ocirun import jsonio
from ocirun.schema.patterns import search


def _schema_dir() -> str:
    """schemas/ inside the installed package (its package-data), else the one of the source tree."""
    package = os.path.dirname(os.path.dirname(__file__))
    installed = os.path.join(package, "schemas")
    if os.path.isdir(installed):
        return installed
    return os.path.join(os.path.dirname(package), "schemas")


SCHEMA_DIR = _schema_dir()
_documents: dict[str, dict] = {}
_references: dict[tuple[str, str], tuple[dict, str]] = {}


def is_valid(ref: str, instance: object) -> bool:
    """Whether `instance` matches the schema at `ref`, such as "defs.json#/definitions/Mount"."""
    return _valid({"$ref": ref}, instance, "")


def load_schema(name: str) -> dict:
    """The schema file `name` of SCHEMA_DIR, parsed once per process."""
    if name not in _documents:
        _documents[name] = jsonio.load_file(os.path.join(SCHEMA_DIR, name))
    return _documents[name]


def _resolve(ref: str, base: str) -> tuple[dict, str]:
    """The schema that `ref`, found in file `base`, points to, and the file it is in."""
    key = (ref, base)
    if key not in _references:
        name, _, pointer = ref.partition("#")
        name = name or base
        schema = load_schema(name)
        for part in pointer.split("/")[1:]:
            schema = schema[part]
        _references[key] = (schema, name)
    return _references[key]


def _valid(schema: dict, x: object, base: str) -> bool:
    """Whether `x` matches `schema`, a schema in file `base`."""
    if "$ref" in schema:
        schema, base = _resolve(schema["$ref"], base)
        return _valid(schema, x, base)
    for keyword, arg in schema.items():
        check = KEYWORDS.get(keyword)
        if check is not None and not check(arg, x, schema, base):
            return False
    return True


def _is_number(x: object) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


TYPES = {
    "object": lambda x: isinstance(x, dict),
    "array": lambda x: isinstance(x, list),
    "string": lambda x: isinstance(x, str),
    "boolean": lambda x: isinstance(x, bool),
    "integer": lambda x: isinstance(x, int) and not isinstance(x, bool),
}


def _properties(properties: dict, x: object, schema: dict, base: str) -> bool:
    return not isinstance(x, dict) or all(
        _valid(properties[key], value, base) for key, value in x.items() if key in properties
    )


def _pattern_properties(patterns: dict, x: object, schema: dict, base: str) -> bool:
    return not isinstance(x, dict) or all(
        _valid(subschema, value, base)
        for pattern, subschema in patterns.items()
        for key, value in x.items()
        if search(pattern, key)
    )


def _additional_properties(subschema: dict, x: object, schema: dict, base: str) -> bool:
    if not isinstance(x, dict):
        return True
    properties = schema.get("properties", {})
    patterns = schema.get("patternProperties", {})
    return all(
        _valid(subschema, value, base)
        for key, value in x.items()
        if key not in properties and not any(search(pattern, key) for pattern in patterns)
    )


def _items(items: dict | list, x: object, schema: dict, base: str) -> bool:
    if not isinstance(x, list):
        return True
    if isinstance(items, list):
        return all(_valid(subschema, item, base) for subschema, item in zip(items, x, strict=False))
    return all(_valid(items, item, base) for item in x)


KEYWORDS = {
    "type": lambda name, x, schema, base: TYPES[name](x),
    "enum": lambda values, x, schema, base: x in values,
    "minimum": lambda bound, x, schema, base: not _is_number(x) or x >= bound,
    "maximum": lambda bound, x, schema, base: not _is_number(x) or x <= bound,
    "pattern": lambda pattern, x, schema, base: not isinstance(x, str) or search(pattern, x),
    "minItems": lambda n, x, schema, base: not isinstance(x, list) or len(x) >= n,
    "required": lambda names, x, schema, base: (
        not isinstance(x, dict) or all(n in x for n in names)
    ),
    "properties": _properties,
    "patternProperties": _pattern_properties,
    "additionalProperties": _additional_properties,
    "items": _items,
    "allOf": lambda schemas, x, schema, base: all(_valid(s, x, base) for s in schemas),
    "anyOf": lambda schemas, x, schema, base: any(_valid(s, x, base) for s in schemas),
}
