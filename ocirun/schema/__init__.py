"""Validation of config.json, process.json, state and features documents against the OCI
runtime-spec v1.3.0 schemas vendored in schemas/.

Why not jsonschema on the hot path: importing it costs several times a whole `ocirun create`
(benchmarks/README.md has the figures). So documents are first checked by validator.py, a small
yes/no interpreter of the part of draft-04 that the schemas use. It parses the schema files it
needs with ocirun.jsonio and imports neither jsonschema nor re, enum or json: patterns.py checks
the schemas' few `pattern`s with string predicates. Interpreting beats generating Python from
the schemas: the C JSON scanner parses the schemas a Linux config needs faster than Python
compiles a module generated from them whenever there is no .pyc (as under
PYTHONDONTWRITEBYTECODE).

Only a document the fast validator rejects pays for jsonschema (explain.py), which stays the
authority: it words the one-line error, and should it find no error the document is accepted.

How the verdicts are kept equal to jsonschema's: tests/test_schema.py compares them with
Draft4Validator on every spec test document, the real client configs, ~900 random mutations of
them and ~100 edge cases (each bound, pattern and rarely used keyword), compares each pattern
predicate with `re.search`, and fails if the schemas use a keyword, an enum or a pattern that the
interpreter does not handle exactly.
"""

from ocirun.errors import ConfigError
from ocirun.schema.validator import is_valid


def validate_config(config: dict) -> None:
    """Raise ConfigError unless `config` is a valid config.json."""
    _validate("config-schema.json#", config, "config.json")


def validate_process(process: dict) -> None:
    """Raise ConfigError unless `process` is a valid `process` object (`exec --process`)."""
    _validate("config-schema.json#/properties/process", process, "process.json")


def validate_state(state: dict) -> None:
    """Raise ConfigError unless `state` is a valid state document."""
    _validate("state-schema.json#", state, "state")


def validate_features(doc: dict) -> None:
    """Raise ConfigError unless `doc` is a valid features document."""
    _validate("features-schema.json#", doc, "features")


def _validate(ref: str, doc: dict, label: str) -> None:
    if is_valid(ref, doc):
        return
    from ocirun import load_site_packages

    load_site_packages()  # jsonschema lives there; the launcher may have skipped `site`
    from ocirun.schema.explain import first_error

    try:
        error = first_error(ref, doc)
    except RecursionError:  # jsonschema recurses once per level of nesting
        raise ConfigError(f"{label}: nested too deeply to check against the schema") from None
    if error is not None:
        raise ConfigError(f"{label}: {error}")
