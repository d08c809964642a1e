"""A cgroupsPath naming a frozen cgroup is refused at create, as runc refuses it, instead of
waiting forever for an init that never runs. On this hybrid host: the v1 freezer; the cgroup2
case runs in the guest (tests/test_cgroups_v2_guest.py), through the same checks."""

import os
import time
import uuid
from pathlib import Path

import pytest
from helpers import Runtime

RUNC = "/usr/sbin/runc"
CGROUP_PREFIX = f"/ocirun-pytest-{os.getpid()}"  # conftest's: its session end removes it
CGROUP = Path("/sys/fs/cgroup")


def freezer_file(cgroups_path: str) -> tuple[Path, str, str]:
    """(the file that freezes cgroups_path, its frozen value, its thawed value)."""
    if (CGROUP / "freezer").is_dir():
        return CGROUP / "freezer" / cgroups_path.lstrip("/") / "freezer.state", "FROZEN", "THAWED"
    return CGROUP / cgroups_path.lstrip("/") / "cgroup.freeze", "1", "0"


def frozen_cgroup(cgroups_path: str) -> Path:
    path, frozen, _ = freezer_file(cgroups_path)
    path.parent.mkdir(parents=True)
    path.write_text(frozen)
    return path


def thaw_and_remove(cgroups_path: str) -> None:
    path, _, thawed = freezer_file(cgroups_path)
    top = "/" + cgroups_path.lstrip("/").split("/")[0]
    for directory in [path.parent, *path.parent.parents]:
        if (directory / path.name).exists():
            (directory / path.name).write_text(thawed)
        if str(directory).endswith(top):
            break
    for base in CGROUP.iterdir():
        leaf = base / cgroups_path.lstrip("/")
        for directory in [leaf, *leaf.parents]:
            if directory == base or not str(directory).startswith(str(base / top.lstrip("/"))):
                break
            try:
                directory.rmdir()
            except OSError:
                pass


def refused_quickly(runtime, make_bundle, cid: str, cgroups_path: str) -> str:
    """create in cgroups_path fails within seconds; its error output."""
    bundle = make_bundle(["true"])
    bundle.config["linux"]["cgroupsPath"] = cgroups_path
    started = time.monotonic()
    result = runtime("create", "--bundle", bundle.write(), cid, timeout=20)
    assert result.returncode != 0, "create into a frozen cgroup succeeded"
    assert time.monotonic() - started < 20
    assert not runtime.ids(), "a refused create left a state directory"
    return result.stderr


@pytest.fixture
def cgroups_path():
    path = f"{CGROUP_PREFIX}/frozen-{uuid.uuid4().hex[:8]}"
    yield path
    thaw_and_remove(path)


@pytest.mark.parametrize("binary", ["ocirun", RUNC])
def test_create_refuses_a_frozen_cgroup(ocirun, make_bundle, cid, cgroups_path, tmp_path, binary):
    runtime = ocirun if binary == "ocirun" else Runtime(tmp_path / "runc-state", RUNC)
    if binary == RUNC and not os.access(RUNC, os.X_OK):
        pytest.skip("no runc")
    freezer = frozen_cgroup(cgroups_path)
    stderr = refused_quickly(runtime, make_bundle, cid, cgroups_path)
    assert "container's cgroup unexpectedly frozen" in stderr
    assert freezer.exists(), "the refused create removed a cgroup it did not make"


def test_create_refuses_a_cgroup_frozen_with_its_parent(ocirun, make_bundle, cid, cgroups_path):
    """Beyond runc (whose create waits forever here): the new cgroup inherits the freeze."""
    frozen_cgroup(cgroups_path)
    child = f"{cgroups_path}/child"
    stderr = refused_quickly(ocirun, make_bundle, cid, child)
    assert "frozen with an ancestor cgroup" in stderr, stderr
    leftover = [str(base / child.lstrip("/")) for base in CGROUP.iterdir()]
    assert not [d for d in leftover if os.path.isdir(d)], "the refused create left its cgroup"
