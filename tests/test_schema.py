"""ocirun.schema: verdicts equal to jsonschema's, one-line errors, no heavy imports when valid."""

import copy
import functools
import json
import random
import re
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT4

from ocirun import jsonio
from ocirun.errors import ConfigError
from ocirun.schema import validate_config, validate_features, validate_process, validate_state
from ocirun.schema.patterns import PREDICATES, search
from ocirun.schema.validator import KEYWORDS, TYPES, is_valid

ROOT = Path(__file__).resolve().parents[1]
SCHEMAS = ROOT / "schemas"
SPEC_TESTS = Path("/work/shared/oci-runtime-spec/schema/test")
CLIENT_CONFIGS = Path("/work/shared/notes/client-configs")
HELLO = ROOT / "bundles" / "hello" / "config.json"

ENTRIES = {
    "config": "config-schema.json#",
    "process": "config-schema.json#/properties/process",
    "state": "state-schema.json#",
    "features": "features-schema.json#",
}
VALIDATORS = {
    "config": validate_config,
    "process": validate_process,
    "state": validate_state,
    "features": validate_features,
}
PREFIXES = {
    "config": "config.json: ",
    "process": "process.json: ",
    "state": "state: ",
    "features": "features: ",
}
ANNOTATIONS = {"description", "$schema"}
MUTATIONS_PER_DOCUMENT = 40


def _hello() -> dict:
    return jsonio.load_file(str(HELLO))


def _load_schema(name: str) -> dict:
    return json.loads((SCHEMAS / name).read_text())


@functools.cache
def _reference(kind: str) -> jsonschema.Draft4Validator:
    """jsonschema's Draft4Validator for `kind`, with every vendored schema in its registry."""
    registry = Registry().with_resources(
        (path.name, Resource.from_contents(_load_schema(path.name), DRAFT4))
        for path in SCHEMAS.glob("*.json")
    )
    return jsonschema.Draft4Validator({"$ref": ENTRIES[kind]}, registry=registry)


def _documents() -> list[tuple[str, str, bool, object]]:
    """(kind, name, valid per its source, document) of the spec tests, client configs, bundles."""
    sources = [
        (kind, path, path.parent.name == "good")
        for kind in ("config", "state", "features")
        for path in sorted(SPEC_TESTS.glob(f"{kind}/*/*.json"))
    ]
    sources += [("config", path, True) for path in sorted(CLIENT_CONFIGS.glob("*.config.json"))]
    sources += [("process", path, True) for path in sorted(CLIENT_CONFIGS.glob("*.process.json"))]
    sources += [("config", path, True) for path in sorted(ROOT.glob("bundles/*/config.json"))]
    documents = []
    for kind, path, valid in sources:
        try:
            document = jsonio.load_file(str(path))
        except jsonio.JSONError:  # the spec's invalid-json.json tests the parser, not the schema
            continue
        documents.append((kind, f"{kind}:{path.parent.name}/{path.name}", valid, document))
    return documents


DOCUMENTS = _documents()
VALID_DOCUMENTS = [d for d in DOCUMENTS if d[2]]


def _reference_valid(kind: str, document: object) -> bool:
    return _reference(kind).is_valid(document)


@pytest.mark.parametrize(
    ("kind", "name", "valid", "document"), DOCUMENTS, ids=[d[1] for d in DOCUMENTS]
)
def test_documents_agree_with_jsonschema(kind: str, name: str, valid: bool, document: object):
    assert is_valid(ENTRIES[kind], document) == _reference_valid(kind, document) == valid


# ---- mutations ------------------------------------------------------------------------------


def _property_names() -> list[str]:
    """Every property name the schemas define, to add where a document lacks it."""
    names: set[str] = set()

    def walk(node: object) -> None:
        if isinstance(node, dict):
            names.update(node.get("properties", {}))
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    for path in SCHEMAS.glob("*.json"):
        walk(_load_schema(path.name))
    return sorted(names)


PROPERTY_NAMES = _property_names()
NUMBERS = [0, 1, -1, 1.0, 1.5, 255, 256, 511, 512, 65535, 65536, -(2**31), 2**31 - 1, 2**31]
NUMBERS += [2**32 - 1, 2**32, -(2**63), -(2**63) - 1, 2**63 - 1, 2**63, 2**64 - 1, 2**64]
STRINGS = [
    "",
    "\n",
    "x",
    "RLIMIT_NOFILE\n",
    "RLIMIT_nofile",
    "CAP_SYS_ADMIN\n",
    "CAP_",
    "c\n",
    "cb",
    "2MB\n",
    "02MB",
    "64kB",
    "MB:0=100\n",
    "MB:0\n1",
    "0-3, 5\n",
    "0-3;5",
    "SCMP_ACT_ALLOW",
    "mount",
    "private",
]
OTHERS = [True, False, None, [], {}, ["x"], [1], [{}], {"x": 1}, {"": "x"}]
VALUES = NUMBERS + STRINGS + OTHERS


def _locations(node: object, path: tuple = ()) -> list[tuple]:
    """The path of every value inside `node`, below its root."""
    if isinstance(node, dict):
        children = node.items()
    elif isinstance(node, list):
        children = enumerate(node)
    else:
        return []
    return [
        location
        for key, value in children
        for location in [(*path, key), *_locations(value, (*path, key))]
    ]


def _mutate(document: object, rng: random.Random) -> tuple[str, object]:
    """A copy of `document` with one value replaced, one member dropped or one property added."""
    mutated = copy.deepcopy(document)
    path = rng.choice(_locations(mutated))
    parent = mutated
    for key in path[:-1]:
        parent = parent[key]
    key = path[-1]
    value = rng.choice(VALUES)
    operation = rng.choice(("replace", "replace", "drop", "add"))
    if operation == "drop" and isinstance(parent, dict):
        del parent[key]
    elif operation == "add" and isinstance(parent[key], dict):
        parent = parent[key]
        key = rng.choice(PROPERTY_NAMES)
        parent[key] = value
    else:
        operation = "replace"
        parent[key] = value
    return f"{operation} {'/'.join(map(str, path))} {key!r}={value!r}", mutated


@pytest.mark.parametrize(
    ("kind", "name", "valid", "document"), VALID_DOCUMENTS, ids=[d[1] for d in VALID_DOCUMENTS]
)
def test_mutations_agree_with_jsonschema(kind: str, name: str, valid: bool, document: object):
    rng = random.Random(name)
    verdicts = []
    for _ in range(MUTATIONS_PER_DOCUMENT):
        change, mutated = _mutate(document, rng)
        expected = _reference_valid(kind, mutated)
        assert is_valid(ENTRIES[kind], mutated) == expected, change
        verdicts.append(expected)
    assert False in verdicts


def test_mutations_cover_both_verdicts():
    """The mutations must not all be invalid, or agreement would prove little."""
    rng = random.Random(0)
    verdicts = {_reference_valid("config", _mutate(_hello(), rng)[1]) for _ in range(100)}
    assert verdicts == {True, False}


# Edge cases that random mutations rarely reach: the less common uses of each keyword and the
# integer bounds, as (kind, dotted path, value) set into a minimal document of that kind.
BASES = {
    "config": {"ociVersion": "1.3.0", "root": {"path": "rootfs"}},
    "process": {"cwd": "/"},
    "state": {"ociVersion": "1.3.0", "id": "a", "status": "created", "bundle": "/b"},
    "features": {"ociVersionMin": "1.0.0", "ociVersionMax": "1.3.0"},
}


def _each(kind: str, path: str, *values: object) -> list[tuple[str, str, object]]:
    return [(kind, path, value) for value in values]


BLOCK_IO = "linux.resources.blockIO"
DEVICE = {"type": "c", "path": "/dev/x"}
IOMEM = {"firstMFN": 1, "nrMFNs": 2}
EDGE_CASES = [
    *_each("config", f"{BLOCK_IO}.weightDevice", [{"major": 8, "minor": 0}], [{"minor": 0}]),
    *_each("config", f"{BLOCK_IO}.weightDevice", [{"major": 8, "minor": 0, "weight": 65536}]),
    *_each("config", f"{BLOCK_IO}.weightDevice", [{"major": 8, "minor": 0, "leafWeight": 65535}]),
    *_each("config", f"{BLOCK_IO}.throttleReadBpsDevice", [{"major": 8, "minor": 0, "rate": -1}]),
    *_each("config", f"{BLOCK_IO}.throttleWriteIOPSDevice", [{"major": 8, "rate": 1}], ["8:0"]),
    *_each("config", "linux.seccomp", {"syscalls": []}),
    *_each("config", "linux.seccomp.syscalls", [{"names": [], "action": "SCMP_ACT_ERRNO"}]),
    *_each("config", "linux.seccomp.syscalls", [{"names": ["read"], "action": "SCMP_ACT_LOG"}]),
    *_each("config", "linux.seccomp.syscalls", [{"names": ["x"], "action": "X", "errnoRet": -1}]),
    *_each("config", "windows.layerFolders", [], ["C:\\layer"], "C:\\layer"),
    *_each("config", "vm.kernel", {"path": "/k"}),
    *_each("config", "vm", {"kernel": {"path": "/k"}, "image": {"path": "/i", "format": "iso"}}),
    *[
        ("config", "vm", {"kernel": {"path": "/k"}, "hwConfig": {"iomems": iomems}})
        for iomems in ([IOMEM], [{"firstMFN": 1}], [IOMEM, 5], IOMEM)
    ],
    *_each("config", "linux.namespaces", [{"type": "pid"}], [{"type": "net"}], [{}], ["pid"]),
    *_each("config", "zos.namespaces", [{"type": "pid"}], [{"type": "network"}]),
    *_each("config", "linux.netDevices", {"eth0": {"name": 1}}, {"eth0": 5}, {"eth0": {}}),
    *_each("config", "linux.resources.rdma", {"m": {"hcaHandles": 2**32 - 1}}, {"m": 5}),
    *_each("config", "linux.resources.rdma", {"m": {"hcaObjects": 2**32}}),
    *_each("config", "annotations", {"": 5}, {"\n": 5}, {"\n\n": 5}, {"\na": 5}, {"\r": 5}),
    *_each("config", "linux.sysctl", {"net.ipv4.ip_forward": "1"}, {"kernel.shmmax": 1}),
    *_each("config", "linux.resources.unified", {"": 1}, {"memory.max": "max"}),
    *_each("config", "process.user.uid", 2**32 - 1, 2**32, -1, 1.0, True),
    *_each("config", "process.oomScoreAdj", -1000, 1.0, 2**70),
    *_each("config", "process.ioPriority", {"class": "IOPRIO_CLASS_NONE"}),
    *_each("config", "process.ioPriority", {"class": "IOPRIO_CLASS_RT", "priority": 2**31 - 1}),
    *_each("config", "process.ioPriority", {"class": "IOPRIO_CLASS_BE", "priority": 2**31}),
    *_each(
        "config", "linux.devices", [{**DEVICE, "major": 2**63 - 1}], [{**DEVICE, "major": 2**63}]
    ),
    *_each("config", "linux.devices", [{**DEVICE, "minor": -(2**63)}], [{**DEVICE, "minor": 1.5}]),
    *_each("config", "linux.devices", [{**DEVICE, "fileMode": 511}], [{**DEVICE, "fileMode": 512}]),
    *[("config", "linux.devices", [{**DEVICE, "type": t}]) for t in ("c\n", "c\n\n", "C", "\nc")],
    *_each("config", "process.rlimits", [{"type": "RLIMIT_CPU\n", "soft": 0, "hard": 2**64 - 1}]),
    *_each("config", "process.rlimits", [{"type": "RLIMIT_", "soft": 0, "hard": 0}]),
    *_each("config", "process.rlimits", [{"type": "RLIMIT_CPU", "soft": 0, "hard": 2**64}]),
    *_each("config", "linux.resources.hugepageLimits", [{"pageSize": "2MB\n", "limit": 0}]),
    *_each("config", "linux.resources.hugepageLimits", [{"pageSize": "0MB", "limit": 0}]),
    *_each("config", "linux.intelRdt.memBwSchema", "MB:0=10\n", "MB:0\n\n", "MB:\n0", "mb:0"),
    *_each("config", "process.execCPUAffinity.initial", "0-3, 7\n", "0-3\n\n", "0;3"),
    *_each("config", "freebsd.jail.enforceStatfs", 255, 256),
    *_each("config", "freebsd.jail.vnet", "new", "disable"),
    *_each("config", "solaris.anet", [{"linkname": 5}]),
    *_each("config", "hooks.prestart", [{"path": "/x", "timeout": 0}], [{"path": "/x"}]),
    *_each("config", "hooks.poststop", [{"args": ["x"]}]),
    *_each("config", "process.scheduler", {"policy": "SCHED_FIFO", "flags": ["X"]}),
    *_each("config", "process.consoleSize", {"height": 0}),
    *_each("config", "linux.personality", {"domain": "LINUX32", "flags": []}, []),
    *_each("config", "linux.timeOffsets.boottime", {"secs": -(2**63), "nanosecs": 2**32}),
    *_each("config", "linux.memoryPolicy", {"mode": "MPOL_BIND", "flags": ["MPOL_F_STATIC_NODES"]}),
    *_each("config", "mounts", [{"destination": "/m", "uidMappings": [{"containerID": 0}]}]),
    *_each("process", "cwd", 5),
    *_each("process", "args", [1]),
    *_each("process", "env", {}),
    *_each("state", "pid", 0, -1, True, 1.0),
    *_each("state", "status", "paused"),
    *_each("features", "linux.capabilities", ["CAP_SYS_ADMIN", "CAP_X\n"], ["CAP_"], ["cap_x"]),
    *_each("features", "linux.namespaces", ["time", "net"]),
    *_each("features", "hooks", [1]),
]


def _edge_document(kind: str, path: str, value: object) -> object:
    document = copy.deepcopy(BASES[kind])
    *parents, last = path.split(".")
    node = document
    for key in parents:
        node = node.setdefault(key, {})
    node[last] = value
    return document


@pytest.mark.parametrize(
    ("kind", "path", "value"), EDGE_CASES, ids=[f"{c[1]}={c[2]!r}" for c in EDGE_CASES]
)
def test_edge_cases_agree_with_jsonschema(kind: str, path: str, value: object):
    document = _edge_document(kind, path, value)
    assert is_valid(ENTRIES[kind], document) == _reference_valid(kind, document)


# ---- the interpreter handles everything the schemas use -------------------------------------


def _reachable_schemas() -> list[tuple[str, dict]]:
    """(file, schema) of every schema reachable from the entries, following `$ref`s."""
    seen: set[int] = set()
    found = []

    def resolve(ref: str, base: str) -> tuple[str, dict]:
        name, _, pointer = ref.partition("#")
        name = name or base
        node = _load_schema(name)
        for part in pointer.split("/")[1:]:
            node = node[part]
        return name, node

    def visit(base: str, schema: dict) -> None:
        if id(schema) in seen:
            return
        seen.add(id(schema))
        found.append((base, schema))
        if "$ref" in schema:  # draft-04: its siblings are ignored
            visit(*resolve(schema["$ref"], base))
            return
        children = [
            *schema.get("properties", {}).values(),
            *schema.get("patternProperties", {}).values(),
            *schema.get("allOf", []),
            *schema.get("anyOf", []),
        ]
        if "additionalProperties" in schema:
            children.append(schema["additionalProperties"])
        items = schema.get("items", [])
        children += items if isinstance(items, list) else [items]
        for child in children:
            visit(base, child)

    for ref in ENTRIES.values():
        visit(*resolve(ref, ""))
    return found


def test_schemas_use_only_what_the_interpreter_handles():
    problems = []
    for base, schema in _reachable_schemas():
        keywords = {"$ref"} if "$ref" in schema else set(schema) - ANNOTATIONS
        problems += [f"{base}: keyword {k}" for k in keywords - set(KEYWORDS) - {"$ref"}]
        if schema.get("type", "object") not in TYPES:
            problems.append(f"{base}: type {schema['type']!r}")
        if not all(isinstance(value, str) for value in schema.get("enum", [])):
            problems.append(f"{base}: enum {schema['enum']!r}")
        patterns = list(schema.get("patternProperties", {}))
        if "pattern" in schema:
            patterns.append(schema["pattern"])
        problems += [f"{base}: pattern {p!r}" for p in patterns if p not in PREDICATES]
        if not isinstance(schema.get("additionalProperties", {}), dict):
            problems.append(f"{base}: additionalProperties {schema['additionalProperties']!r}")
    assert problems == []


# ---- patterns -------------------------------------------------------------------------------


@pytest.mark.parametrize("pattern", sorted(PREDICATES))
def test_pattern_predicates_agree_with_re(pattern: str):
    pieces = ["RLIMIT_", "CAP_", "MB:", "A", "Z", "_", "a", "c", "b", "u", "p", "0", "1", "9"]
    pieces += [",", " ", "-", "K", "M", "G", "B", "k", "\n", "\r", "É", "١", ":"]
    rng = random.Random(pattern)
    strings = {"".join(rng.choices(pieces, k=rng.randrange(6))) for _ in range(5000)}
    for s in sorted(strings):
        assert PREDICATES[pattern](s) == (re.search(pattern, s) is not None), repr(s)


def test_other_patterns_fall_back_to_re():
    assert search("^a+$", "aa\n")
    assert not search("^a+$", "ab")


# ---- the API --------------------------------------------------------------------------------


def _error(validate, document) -> str:
    with pytest.raises(ConfigError) as caught:
        validate(document)
    return str(caught.value)


def test_valid_documents_pass():
    validate_config(_hello())
    validate_process(_hello()["process"])
    validate_state({"ociVersion": "1.3.0", "id": "a", "status": "created", "bundle": "/b"})
    validate_features({"ociVersionMin": "1.0.0", "ociVersionMax": "1.3.0"})


def test_type_error_names_the_path():
    config = _hello()
    config["process"]["args"] = 5
    assert _error(validate_config, config) == "config.json: process.args: 5 is not of type 'array'"


def test_array_indexes_in_the_path():
    config = _hello()
    del config["mounts"][2]["destination"]
    message = _error(validate_config, config)
    assert message == "config.json: mounts[2]: 'destination' is a required property"


def test_error_at_the_root():
    config = _hello()
    del config["ociVersion"]
    assert _error(validate_config, config) == "config.json: 'ociVersion' is a required property"


def test_each_document_kind_has_its_prefix():
    assert _error(validate_process, {"args": ["sh"]}) == (
        "process.json: 'cwd' is a required property"
    )
    state = {"ociVersion": "1.3.0", "id": "a", "status": "created", "bundle": "/b", "pid": -1}
    assert _error(validate_state, state) == "state: pid: -1 is less than the minimum of 0"
    assert _error(validate_features, {"ociVersionMin": "1.0.0"}) == (
        "features: 'ociVersionMax' is a required property"
    )


@pytest.mark.parametrize(
    ("kind", "name", "document"),
    [(d[0], d[1], d[3]) for d in DOCUMENTS if not d[2]],
    ids=[d[1] for d in DOCUMENTS if not d[2]],
)
def test_spec_bad_documents_give_one_line(kind: str, name: str, document: object):
    message = _error(VALIDATORS[kind], document)
    assert message.startswith(PREFIXES[kind])
    assert "\n" not in message


def test_hot_path_imports_nothing_heavy():
    """Validating a good config must not import jsonschema, re, enum or json (poisoned here)."""
    code = f"""
import sys
from ocirun import jsonio
for name in ("jsonschema", "re", "enum", "json"):
    sys.modules[name] = None
from ocirun.schema import validate_config
validate_config(jsonio.load_file({str(HELLO)!r}))
"""
    subprocess.run([sys.executable, "-c", code], check=True)
