"""Every fixture of the tests: a busybox rootfs, bundles, a private state root, ids.

Tests that need root and real containers carry the `container` marker (pyproject.toml), so that
`pytest -m "not container"` runs the in-process tests alone, as any user. A test that asks for
one of the container fixtures below gets the marker here; a module that needs root otherwise
sets `pytestmark = pytest.mark.container`. (pytest puts this directory on sys.path, so the
tests import helpers.py directly.)
"""

import os
import shutil
import subprocess
import tempfile
import uuid

import pytest
from helpers import (
    CGROUP_PREFIX,
    REPO,
    Bundle,
    Runtime,
    default_config,
    mounts_under,
    remove_cgroup_tree,
    unmount_under,
)  # fmt: skip

# the user-mode-linux guest: the `guest` fixture and marker (tests/guest/README.md)
pytest_plugins = ["guest.pytest_plugin"]

CONTAINER_FIXTURES = {"rootfs", "userns_rootfs", "ocirun", "make_bundle", "guest"}


def pytest_collection_modifyitems(items) -> None:
    for item in items:
        if CONTAINER_FIXTURES.intersection(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.container)


@pytest.fixture(scope="session")
def rootfs(tmp_path_factory) -> str:
    """A busybox rootfs built once per session (read-only bundles share it)."""
    path = tmp_path_factory.mktemp("rootfs-src") / "rootfs"
    subprocess.run([str(REPO / "bundles" / "make-rootfs"), str(path)], check=True)
    return str(path)


@pytest.fixture(scope="session", autouse=True)
def _cgroup_prefix_cleanup():
    yield
    remove_cgroup_tree(CGROUP_PREFIX)


@pytest.fixture
def ocirun(tmp_path):
    """The ocirun CLI with a private state root; every container left is force-deleted."""
    runtime = Runtime(tmp_path / "state")
    yield runtime
    runtime.cleanup()
    leftover = runtime.ids()
    unmount_under(str(tmp_path))
    assert not leftover, f"containers left in the state root: {leftover}"


@pytest.fixture
def make_bundle(tmp_path, rootfs):
    """make_bundle(args) → a Bundle whose config runs args in a private test cgroup."""
    created = []

    def make(args=("true",), name=None) -> Bundle:
        name = name or f"b{len(created)}"
        path = tmp_path / name
        path.mkdir()
        cgroups_path = f"{CGROUP_PREFIX}/{uuid.uuid4().hex[:12]}"
        bundle = Bundle(path, default_config(rootfs, list(args), cgroups_path))
        created.append(bundle)
        return bundle

    yield make
    unmount_under(str(tmp_path))
    assert not mounts_under(str(tmp_path)), "mounts left under the test's bundles"


@pytest.fixture
def cid() -> str:
    """A unique container id."""
    return f"t-{uuid.uuid4().hex[:10]}"


@pytest.fixture(scope="session")
def userns_rootfs(rootfs):
    """The busybox rootfs where a user namespace's root (host uid 100000) can reach it: pytest's
    own temp dirs are mode 0700, which no uid but the host's root may traverse."""
    top = tempfile.mkdtemp(prefix="ocirun-pytest-userns-")
    os.chmod(top, 0o755)
    shutil.copytree(rootfs, os.path.join(top, "rootfs"), symlinks=True)
    yield os.path.join(top, "rootfs")
    shutil.rmtree(top)
