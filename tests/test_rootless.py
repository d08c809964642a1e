"""Rootless mode: an unprivileged user of its own (made here, removed afterwards) runs ocirun and
runc side by side with the config `spec --rootless` writes; nothing runs as root pretending."""

import json
import os
import pwd
import subprocess
import tempfile
import uuid

import pytest
from helpers import OCIRUN, REPO

RUNC = "/usr/sbin/runc"
RUNTIMES = {"ocirun": OCIRUN, "runc": RUNC}


class User:
    """A user made for one test module, with subordinate id ranges and an XDG runtime dir."""

    def __init__(self) -> None:
        self.name = "ocrl" + uuid.uuid4().hex[:8]
        subprocess.run(["useradd", "-M", "-s", "/bin/sh", self.name], check=True)
        entry = pwd.getpwnam(self.name)
        self.uid, self.gid = entry.pw_uid, entry.pw_gid
        self.subuid = _range("/etc/subuid", self.name)
        self.subgid = _range("/etc/subgid", self.name)
        self.xdg = f"/run/user/{self.uid}"
        os.makedirs(self.xdg, 0o700)
        os.chown(self.xdg, self.uid, self.gid)
        self.home = tempfile.mkdtemp(prefix=f"{self.name}-")
        os.chmod(self.home, 0o755)
        rootfs = os.path.join(self.home, "rootfs")
        subprocess.run([str(REPO / "bundles" / "make-rootfs"), rootfs], check=True,
                       capture_output=True)  # fmt: skip
        subprocess.run(["chown", "-R", f"{self.uid}:{self.gid}", self.home], check=True)

    def run(self, *argv: str, timeout: float = 30, env: dict | None = None):
        """argv as the user (setpriv: its uid, gid and groups), with its XDG_RUNTIME_DIR."""
        environment = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "HOME": self.home,
                       "USER": self.name, "XDG_RUNTIME_DIR": self.xdg, **(env or {})}  # fmt: skip
        with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
            proc = subprocess.run(
                ["setpriv", f"--reuid={self.uid}", f"--regid={self.gid}", "--init-groups",
                 "--", *argv],
                stdout=out, stderr=err, env=environment, cwd=self.home, timeout=timeout,
            )  # fmt: skip
            out.seek(0)
            err.seek(0)
            return subprocess.CompletedProcess(
                proc.args, proc.returncode, out.read().decode(), err.read().decode()
            )

    def remove(self) -> None:
        """Kill what the user still runs, then remove its files and the user itself."""
        subprocess.run(["pkill", "-9", "-U", str(self.uid)], check=False)
        for path in (self.xdg, self.home):
            if os.path.isdir(path):
                subprocess.run(["rm", "-rf", "--one-file-system", path], check=False)
        subprocess.run(["userdel", self.name], check=False, capture_output=True)


def _range(path: str, name: str) -> tuple[int, int]:
    with open(path) as f:
        for line in f:
            owner, start, count = line.strip().split(":")
            if owner == name:
                return int(start), int(count)
    pytest.skip(f"useradd gave {name} no range in {path}")


@pytest.fixture(scope="module")
def user():
    made = User()
    try:
        yield made
    finally:
        made.remove()


def _bundle(user: User, name: str, args: list[str], change=None) -> str:
    """A bundle of the user's, with the config `spec --rootless` writes (as the user)."""
    bundle = os.path.join(user.home, name)
    os.mkdir(bundle)
    os.chown(bundle, user.uid, user.gid)
    result = user.run(OCIRUN, "spec", "--rootless", "--bundle", bundle)
    assert result.returncode == 0, result.stderr
    path = os.path.join(bundle, "config.json")
    with open(path) as f:
        config = json.load(f)
    config["root"] = {"path": os.path.join(user.home, "rootfs"), "readonly": True}
    config["process"]["terminal"] = False
    config["process"]["args"] = args
    if change:
        change(config)
    with open(path, "w") as f:
        json.dump(config, f)
    return bundle


def test_spec_rootless_is_runcs(user):
    configs = {}
    for name, binary in RUNTIMES.items():
        directory = os.path.join(user.home, f"spec-{name}")
        os.mkdir(directory)
        os.chown(directory, user.uid, user.gid)
        result = user.run(binary, "spec", "--rootless", "--bundle", directory)
        assert result.returncode == 0, result.stderr
        with open(os.path.join(directory, "config.json")) as f:
            configs[name] = json.load(f)
        del configs[name]["ociVersion"], configs[name]["hostname"]
    assert configs["ocirun"] == configs["runc"]
    assert configs["ocirun"]["linux"]["uidMappings"] == [
        {"containerID": 0, "hostID": user.uid, "size": 1}
    ]


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_run_is_root_inside_mapped_to_the_user(user, runtime):
    script = "id -u; id -g; cat /proc/self/uid_map /proc/self/gid_map; ls /dev/null /dev/pts"
    bundle = _bundle(user, f"run-{runtime}", ["sh", "-c", script])
    result = user.run(RUNTIMES[runtime], "run", "--bundle", bundle, "c1")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.split("\n")
    assert lines[:2] == ["0", "0"]
    assert lines[2].split() == ["0", str(user.uid), "1"]
    assert lines[3].split() == ["0", str(user.gid), "1"]
    assert f"{runtime}" in os.listdir(user.xdg)  # the default root is $XDG_RUNTIME_DIR/<runtime>
    assert os.listdir(os.path.join(user.xdg, runtime)) == []  # nothing left after the run


def test_lifecycle_state_under_xdg_runtime_dir(user):
    bundle = _bundle(user, "life", ["sleep", "1000"])
    root = os.path.join(user.xdg, "ocirun")
    assert user.run(OCIRUN, "create", "--bundle", bundle, "life").returncode == 0
    try:
        assert os.path.isdir(os.path.join(root, "life"))
        state = json.loads(user.run(OCIRUN, "state", "life").stdout)
        assert state["status"] == "created"
        assert user.run(OCIRUN, "start", "life").returncode == 0
        listing = json.loads(user.run(OCIRUN, "list", "--format", "json").stdout)
        assert [c["id"] for c in listing] == ["life"] and listing[0]["status"] == "running"
        with open(f"/proc/{state['pid']}/status") as f:
            uid_line = next(line for line in f if line.startswith("Uid:"))
        assert uid_line.split()[1] == str(user.uid)  # the host sees the user's uid
        result = user.run(OCIRUN, "exec", "life", "sh", "-c", "id -u; cat /proc/1/cmdline")
        assert result.returncode == 0, result.stderr
        assert result.stdout.startswith("0\nsleep")
        assert user.run(OCIRUN, "kill", "life", "KILL").returncode == 0
        for _ in range(500):
            if json.loads(user.run(OCIRUN, "state", "life").stdout)["status"] == "stopped":
                break
        assert user.run(OCIRUN, "delete", "life").returncode == 0
        assert os.listdir(root) == []
    finally:
        user.run(OCIRUN, "delete", "--force", "life")


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_subordinate_ranges_through_newuidmap(user, runtime):
    start, _ = user.subuid
    gstart, _ = user.subgid

    def maps(config):
        linux = config["linux"]
        linux["uidMappings"] += [{"containerID": 1, "hostID": start, "size": 1000}]
        linux["gidMappings"] += [{"containerID": 1, "hostID": gstart, "size": 1000}]

    script = "cat /proc/self/uid_map /proc/self/gid_map"
    bundle = _bundle(user, f"multi-{runtime}", ["sh", "-c", script], maps)
    result = user.run(RUNTIMES[runtime], "run", "--bundle", bundle, "m1")
    assert result.returncode == 0, result.stderr
    assert [line.split() for line in result.stdout.splitlines()] == [
        ["0", str(user.uid), "1"], ["1", str(start), "1000"],
        ["0", str(user.gid), "1"], ["1", str(gstart), "1000"],
    ]  # fmt: skip


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_ids_the_user_does_not_own_are_refused(user, runtime):
    def maps(config):
        config["linux"]["uidMappings"] += [{"containerID": 1, "hostID": 1, "size": 100}]

    bundle = _bundle(user, f"notmine-{runtime}", ["true"], maps)
    result = user.run(RUNTIMES[runtime], "run", "--bundle", bundle, "n1")
    assert result.returncode != 0
    if runtime == "ocirun":
        assert "linux.uidMappings" in result.stderr and "newuidmap" in result.stderr
        assert "Traceback" not in result.stderr
    assert os.listdir(os.path.join(user.xdg, runtime)) == []
    ps = subprocess.run(["ps", "-o", "stat=,args=", "-U", str(user.uid)], capture_output=True)
    # (a zombie is a stopped container of an earlier test, waiting for its reaper)
    assert [line for line in ps.stdout.decode().splitlines() if line[0] != "Z"] == []


@pytest.mark.parametrize("runtime", RUNTIMES)
@pytest.mark.parametrize("resources, works", [
    ({"memory": {"limit": 64 << 20}}, False),
    ({"pids": {"limit": 10}}, False),
    ({"devices": [{"allow": False, "access": "rwm"}]}, True),
])  # fmt: skip
def test_limits_without_a_cgroup_as_runc(user, runtime, resources, works):
    """On this host's v1 hierarchies the user may make no cgroup: runc then runs without one,
    and refuses limits it cannot set (device rules it ignores)."""
    name = f"lim-{runtime}-{next(iter(resources))}"
    bundle = _bundle(user, name, ["true"], lambda c: c["linux"].update(resources=resources))
    result = user.run(RUNTIMES[runtime], "run", "--bundle", bundle, "l1")
    assert (result.returncode == 0) == works, result.stderr
    if not works:
        assert f"cannot set {next(iter(resources))} limit" in result.stderr
    assert os.listdir(os.path.join(user.xdg, runtime)) == []


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_pause_and_ps_need_a_cgroup(user, runtime):
    bundle = _bundle(user, f"pause-{runtime}", ["sleep", "1000"])
    binary = RUNTIMES[runtime]
    assert user.run(binary, "run", "--detach", "--bundle", bundle, "p1").returncode == 0
    try:
        result = user.run(binary, "pause", "p1")
        assert result.returncode != 0 and "cannot toggle freezer" in result.stderr
        assert user.run(binary, "ps", "p1").returncode != 0
        assert json.loads(user.run(binary, "state", "p1").stdout)["status"] == "running"
    finally:
        assert user.run(binary, "delete", "--force", "p1").returncode == 0
    assert os.listdir(os.path.join(user.xdg, runtime)) == []


def test_xdg_runtime_dir_not_writable(user):
    result = user.run(OCIRUN, "list", env={"XDG_RUNTIME_DIR": "/"})
    assert result.returncode != 0
    assert "$XDG_RUNTIME_DIR must be writable" in result.stderr


def test_explicit_root_and_rootless_false(user):
    bundle = _bundle(user, "rootless-false", ["true"])
    root = os.path.join(user.home, "explicit-root")
    result = user.run(OCIRUN, "--root", root, "--rootless", "false", "run", "-b", bundle, "f1")
    assert result.returncode != 0 and "Permission denied" in result.stderr  # it wants a cgroup
    result = user.run(OCIRUN, "--root", root, "--rootless", "true", "run", "-b", bundle, "f1")
    assert result.returncode == 0, result.stderr
    assert os.listdir(root) == []
    assert user.run(OCIRUN, "--rootless", "maybe", "list").returncode != 0


def test_root_keeps_run_ocirun(tmp_path):
    """The host's root ignores XDG_RUNTIME_DIR (as runc: /run/user/0 of a login session)."""
    env = dict(os.environ, XDG_RUNTIME_DIR=str(tmp_path))
    subprocess.run([OCIRUN, "list"], env=env, check=True, capture_output=True)
    assert not (tmp_path / "ocirun").exists()
