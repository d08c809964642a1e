"""Rootless podman (an unprivileged user of the test's own, vfs storage, no network, cgroupfs
without systemd) driving ocirun, and runc the same way: run, exec, stop, remove."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from client_managers import missing_tools

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from rootless_user import REPO, User  # noqa: E402

SKIP_REASON = missing_tools("podman", "conmon", "newuidmap")
pytestmark = pytest.mark.skipif(bool(SKIP_REASON), reason=SKIP_REASON)
RUNTIMES = {"ocirun": str(REPO / ".venv" / "bin" / "ocirun"), "runc": "/usr/sbin/runc"}
IMAGE = "localhost/ocirun-rootless-busybox"


@pytest.fixture(scope="module")
def user():
    made = User()
    try:
        made.make()
        tar = os.path.join(made.home, "rootfs.tar")
        subprocess.run(["tar", "-C", os.path.join(made.home, "rootfs"), "-cf", tar, "."],
                       check=True)  # fmt: skip
        os.chown(tar, made.uid, made.gid)
        for name, binary in RUNTIMES.items():
            # podman passes --log only to a runtime it knows by name: call each one runc
            link = os.path.join(made.home, "runtimes", name, "runc")
            os.makedirs(os.path.dirname(link))
            os.symlink(binary, link)
        result = made.run(*_podman(), "import", tar, IMAGE, timeout=120)
        assert result.returncode == 0, result.stderr
        yield made
    finally:
        if made.uid >= 0:
            made.run(*_podman(), "rm", "--all", "--force", "--time=0", timeout=120)
        made.remove()


def _podman(user: User | None = None, runtime: str = "") -> list[str]:
    """podman as the user sees it here: vfs storage in its home, no systemd."""
    argv = ["podman", "--storage-driver=vfs", "--cgroup-manager=cgroupfs",
            "--events-backend=file"]  # fmt: skip
    if user and runtime:
        argv.append(f"--runtime={user.home}/runtimes/{runtime}/runc")
    return argv


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_run_exec_stop_remove(user, runtime):
    podman = _podman(user, runtime)
    result = user.run(*podman, "run", "--rm", "--network=none", IMAGE, "sh", "-c",
                      "id -u; cat /proc/self/uid_map", timeout=120)  # fmt: skip
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "0"
    assert lines[1].split() == ["0", str(user.uid), "1"]  # podman's user namespace
    assert lines[2].split()[1:] == [str(user.subuid[0]), str(user.subuid[1])]

    name = f"rl-{runtime}"
    result = user.run(*podman, "run", "--detach", f"--name={name}", "--network=none", IMAGE,
                      "sleep", "1000", timeout=120)  # fmt: skip
    assert result.returncode == 0, result.stderr
    result = user.run(*podman, "exec", name, "sh", "-c", "echo out; exit 3", timeout=60)
    assert (result.returncode, result.stdout) == (3, "out\n"), result.stderr
    state = user.run(*podman, "inspect", "--format={{.State.Status}}", name)
    assert state.stdout.strip() == "running"
    assert user.run(*podman, "stop", "--time=1", name, timeout=60).returncode == 0
    state = user.run(*podman, "inspect", "--format={{.State.Status}}", name)
    assert state.stdout.strip() == "exited"
    result = user.run(*podman, "rm", name, timeout=60)
    assert result.returncode == 0, result.stderr
    assert os.listdir(os.path.join(user.xdg, runtime)) == []
