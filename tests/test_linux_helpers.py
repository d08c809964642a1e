"""Helpers (no tests) shared by the tests/test_linux_*.py files: run a probe, read mountinfo."""

import json
import os
import shutil
import tempfile

import pytest
from helpers import mounts_under

USERNS_MAPPING = [{"containerID": 0, "hostID": 100000, "size": 65536}]


def run_probe(ocirun, bundle, cid: str, script: str, expect_rc: int = 0) -> str:
    """Run `sh -c script` in the bundle's container; return its stdout."""
    bundle.config["process"]["args"] = ["sh", "-c", script]
    result = ocirun("run", "--bundle", bundle.write(), cid)
    assert result.returncode == expect_rc, (result.returncode, result.stdout, result.stderr)
    return result.stdout


def create_fails(ocirun, bundle, cid: str) -> str:
    """Create must fail, leave no container behind; return the error output."""
    result = ocirun("create", "--bundle", bundle.write(), cid)
    assert result.returncode != 0, result.stdout
    assert ocirun("state", cid).returncode != 0
    return result.stderr


def mount_line(mountinfo: str, path: str) -> str:
    """The last mountinfo line of the mount at path (the visible one)."""
    lines = [line for line in mountinfo.splitlines() if line.split()[4:5] == [path]]
    assert lines, f"no mount at {path} in:\n{mountinfo}"
    return lines[-1]


def status_field(status: str, name: str) -> str:
    """A field of /proc/PID/status text."""
    for line in status.splitlines():
        key, _, value = line.partition(":")
        if key == name:
            return value.strip()
    raise AssertionError(f"no {name} in status")


def created_pid(ocirun, bundle, cid: str) -> int:
    """Create the container; return its init's host pid."""
    ocirun("create", "--bundle", bundle.write(), cid, check=True)
    return json.loads(ocirun("state", cid, check=True).stdout)["pid"]


def host_mounts(under) -> set[str]:
    """Mount points at or below a directory of the test (others' runs may mount elsewhere)."""
    return set(mounts_under(str(under)))


def has_ns(name: str) -> bool:
    return os.path.exists(f"/proc/self/ns/{name}")


@pytest.fixture(scope="session")
def userns_rootfs(rootfs):
    """The busybox rootfs where a user namespace's root (host uid 100000) can reach it: pytest's
    own temp dirs are mode 0700, which no uid but the host's root may traverse."""
    top = tempfile.mkdtemp(prefix="ocirun-pytest-userns-")
    os.chmod(top, 0o755)
    shutil.copytree(rootfs, os.path.join(top, "rootfs"), symlinks=True)
    yield os.path.join(top, "rootfs")
    shutil.rmtree(top)


def add_userns(config: dict, rootfs: str) -> None:
    """A new user namespace mapping the container's ids 0-65535 to 100000-165535."""
    config["root"]["path"] = rootfs
    config["linux"]["namespaces"].append({"type": "user"})
    config["linux"]["uidMappings"] = USERNS_MAPPING
    config["linux"]["gidMappings"] = USERNS_MAPPING
