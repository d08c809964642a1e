"""Hostile input, property-based: whatever bytes config.json, process.json, a --resources file
or state.json hold, ocirun answers with one clear line naming the file, a non-zero exit, and
leaves nothing behind; never a traceback or an "internal error".

A few hundred examples in all by default; OCIRUN_HYPOTHESIS_LONG=1 runs 10,000.
"""

import json
import os
import uuid
from pathlib import Path

import pytest
from helpers import REPO, cgroup_dirs
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

LONG = bool(os.environ.get("OCIRUN_HYPOTHESIS_LONG"))
PROPERTIES = 9  # tests below that draw examples: the long run shares 10,000 among them
EXAMPLES = 10_000 // PROPERTIES + 1 if LONG else 35
fuzz = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=not LONG,  # the default run is the same every time; the long one explores
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
    ],  # fmt: skip
)


def assert_clean_refusal(result, name: str, status: int = 1) -> None:
    """One line naming the file, the exit status (runc's exec fails with 255), no traceback or
    internal error."""
    lines = result.stderr.strip().splitlines()
    assert result.returncode == status, (result.returncode, result.stderr)
    assert len(lines) == 1 and name in lines[0], result.stderr
    assert "internal error" not in result.stderr and "Traceback" not in result.stderr


def json_documents(max_leaves: int = 30):
    scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20)
    return st.recursive(
        scalars,
        lambda children: (
            st.lists(children, max_size=4)
            | st.dictionaries(st.text(max_size=10), children, max_size=4)
        ),
        max_leaves=max_leaves,
    )


def deeply_nested(depth: int, inner: str = "1") -> str:
    return "[" * depth + inner + "]" * depth


@pytest.fixture
def bad_bundle(tmp_path, rootfs, ocirun):
    """create --bundle with the given config.json bytes; asserts the refusal is clean and
    nothing is left (state dir, mounts, cgroups)."""
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    cgroups_path = f"/ocirun-fuzz-{uuid.uuid4().hex[:8]}"
    base = _valid_config(rootfs, cgroups_path)

    def create(data: bytes, allow_success: bool = False):
        (bundle / "config.json").write_bytes(data)
        cid = f"f-{uuid.uuid4().hex[:10]}"
        result = ocirun("create", "--bundle", str(bundle), cid)
        if result.returncode == 0 and allow_success:
            ocirun("delete", "--force", cid, check=True)
        else:
            assert_clean_refusal(result, "config.json" if not allow_success else "")
        assert cid not in ocirun.ids()
        return result

    create.base = base
    yield create
    assert not cgroup_dirs(cgroups_path), "a refused create left its cgroup"


def _valid_config(rootfs: str, cgroups_path: str) -> dict:
    from helpers import default_config

    return default_config(rootfs, ["true"], cgroups_path)


@fuzz
@given(data=st.binary(max_size=2000))
def test_arbitrary_bytes_as_config_json(bad_bundle, data):
    bad_bundle(data)


@fuzz
@given(cut=st.integers(min_value=0, max_value=10_000), junk=st.binary(max_size=8))
def test_truncated_or_corrupted_config_json(bad_bundle, cut, junk):
    text = json.dumps(bad_bundle.base).encode()
    cut %= len(text)
    bad_bundle(text[:cut] + junk)


@fuzz
@given(
    depth=st.integers(min_value=1, max_value=200_000),
    where=st.sampled_from(["top", "args", "annotations", "mounts", "linux"]),
)
def test_deeply_nested_config_json(bad_bundle, depth, where):
    config = dict(bad_bundle.base)
    marker = "NESTED"
    if where == "top":
        text = deeply_nested(depth)
    else:
        if where == "args":
            config["process"] = dict(config["process"], args=marker)
        elif where == "annotations":
            config["annotations"] = {"a": marker}
        elif where == "mounts":
            config["mounts"] = marker
        else:
            config["linux"] = dict(config["linux"], resources=marker)
        text = json.dumps(config).replace(f'"{marker}"', deeply_nested(depth, "{}"))
    bad_bundle(text.encode())


@pytest.mark.parametrize("depth", [700, 900, 977, 990])
def test_nesting_near_the_recursion_limit_in_annotations(bad_bundle, depth):
    """Found by the long run: objects nested ~977 deep passed the JSON scanner, then wording
    the schema error recursed too deep (an internal error)."""
    config = dict(bad_bundle.base, annotations={"k": "NESTED"})
    nested = "{" + '"a":{' * depth + "}" * depth + "}"
    bad_bundle(json.dumps(config).replace('"NESTED"', nested).encode())


@fuzz
@given(document=json_documents())
def test_any_json_document_as_config_json(bad_bundle, document):
    """Arrays, strings, numbers, null; objects of any shape (not configs: refused)."""
    bad_bundle(json.dumps(document).encode())


NOT_UTF8 = [b"\xff", b"\xc3", b"\xed\xa0\x80", b"\xf8\x88\x80\x80\x80", b"\xc0\xaf", b"\x00"]


@fuzz
@given(position=st.integers(min_value=0), bad=st.sampled_from(NOT_UTF8))
def test_invalid_utf8_in_config_json(bad_bundle, position, bad):
    text = json.dumps(bad_bundle.base).encode()
    position %= len(text)
    bad_bundle(text[:position] + bad + text[position:])


def _inline_refs(node, document: dict, documents: dict, depth: int = 0):
    """The vendored schema with every $ref replaced by what it names (for the generator)."""
    if isinstance(node, list):
        return [_inline_refs(n, document, documents, depth) for n in node]
    if not isinstance(node, dict):
        return node
    if "$ref" in node:
        name, _, pointer = node["$ref"].partition("#")
        target_doc = documents[name] if name else document
        target = target_doc
        for part in pointer.strip("/").split("/"):
            if part:
                target = target[part]
        return _inline_refs(target, target_doc, documents, depth + 1)
    return {k: _inline_refs(v, document, documents, depth) for k, v in node.items()}


def _schema_section(*path: str) -> dict:
    directory = REPO / "schemas"
    documents = {p.name: json.loads(p.read_text()) for p in Path(directory).glob("*.json")}
    node = documents["config-schema.json"]
    doc = node
    for part in path:
        node = node["properties"][part] if "properties" in node else node[part]
        if "$ref" in node:
            name, _, pointer = node["$ref"].partition("#")
            doc = documents[name]
            node = doc
            for p in pointer.strip("/").split("/"):
                node = node[p]
    return _inline_refs(node, doc, documents)


# sections drawn from the schemas: each runs inside the container's own namespaces and
# cgroup, never on the host (no sysctl, mounts, hooks, namespaces or netDevices)
SECTIONS = {
    "process": ("process",),
    "hostname": ("hostname",),
    "annotations": ("annotations",),
    "resources": ("linux", "resources"),
    "seccomp": ("linux", "seccomp"),
    "maskedPaths": ("linux", "maskedPaths"),
    "personality": ("linux", "personality"),
}


@st.composite
def schema_shaped_configs(draw, base: dict):
    from hypothesis_jsonschema import from_schema

    name = draw(st.sampled_from(sorted(SECTIONS)))
    value = draw(from_schema(_schema_section(*SECTIONS[name])))
    config = json.loads(json.dumps(base))
    if name in ("process", "hostname", "annotations"):
        config[name] = value
    else:
        config["linux"][name] = value
    return config


@fuzz
@given(data=st.data())
def test_schema_shaped_configs_are_created_or_refused_cleanly(bad_bundle, data):
    config = data.draw(schema_shaped_configs(bad_bundle.base))
    result = bad_bundle(json.dumps(config).encode(), allow_success=True)
    assert "internal error" not in result.stderr and "Traceback" not in result.stderr
    if result.returncode:
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr


@pytest.fixture
def running(ocirun, make_bundle):
    """A running container (sleep), deleted at the end."""
    bundle = make_bundle(["sleep", "300"])
    cid = f"r-{uuid.uuid4().hex[:10]}"
    ocirun("run", "-d", "--bundle", bundle.write(), cid, check=True)
    yield cid, bundle
    ocirun("delete", "--force", cid)


def hostile_files():
    """Bytes for a file that should hold a JSON object: anything, or JSON of any shape."""
    return (
        st.binary(max_size=300)
        | json_documents().map(lambda d: json.dumps(d).encode())
        | st.integers(1, 100_000).map(lambda n: deeply_nested(n).encode())
    )


@fuzz
@given(data=hostile_files())
def test_hostile_process_json_for_exec(ocirun, running, tmp_path, data):
    cid, _ = running
    path = tmp_path / "process.json"
    path.write_bytes(data)
    result = ocirun("exec", "--process", str(path), cid)
    assert_clean_refusal(result, "process.json", status=255)


@fuzz
@given(data=hostile_files().filter(lambda d: not d.strip().startswith(b"{")))
def test_hostile_resources_for_update(ocirun, running, tmp_path, data):
    cid, _ = running
    path = tmp_path / "resources.json"
    path.write_bytes(data)
    result = ocirun("update", "--resources", str(path), cid)
    assert_clean_refusal(result, str(path))


@fuzz
@given(data=hostile_files())
def test_hostile_state_json(ocirun, running, data):
    cid, _ = running
    state_file = ocirun.root / cid / "state.json"
    good = state_file.read_bytes()
    try:
        state_file.write_bytes(data)
        for command in (["state", cid], ["kill", cid, "CONT"], ["delete", cid]):
            result = ocirun(*command)
            assert_clean_refusal(result, "state.json")
    finally:
        state_file.write_bytes(good)
    assert ocirun("state", cid).returncode == 0
