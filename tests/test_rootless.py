"""Rootless mode: an unprivileged user of its own (made here, removed afterwards) runs ocirun and
runc side by side with the config `spec --rootless` writes; nothing runs as root pretending."""

import json
import os
import subprocess

import pytest
from helpers import OCIRUN
from rootless_user import User

RUNC = "/usr/sbin/runc"
RUNTIMES = {"ocirun": OCIRUN, "runc": RUNC}


@pytest.fixture(scope="module")
def user():
    made = User()
    try:
        made.make()
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


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_run_with_a_terminal(user, runtime):
    """A foreground run on a pty of its own (script gives it one): a devpts of the container's."""
    bundle = _bundle(user, f"tty-{runtime}", ["sh", "-c", "tty; ls -n /dev/pts/0"],
                     lambda c: c["process"].update(terminal=True))  # fmt: skip
    command = f"{RUNTIMES[runtime]} run --bundle {bundle} t1"
    result = user.run("script", "-qec", command, "/dev/null")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].endswith("/dev/pts/0")  # (runc's own output starts with a NUL: "^@")
    assert lines[1].split()[2:4] == ["0", "0"]  # the user's ids, root's inside
    assert os.listdir(os.path.join(user.xdg, runtime)) == []


def test_container_root_mapped_to_a_subordinate_id(user):
    """Beyond runc (which cannot chown its exec fifo to that id): the container's root is not
    the user, only ids of its ranges are mapped."""
    start, size = user.subuid
    gstart, gsize = user.subgid

    def maps(config):
        config["linux"]["uidMappings"] = [{"containerID": 0, "hostID": start, "size": size}]
        config["linux"]["gidMappings"] = [{"containerID": 0, "hostID": gstart, "size": gsize}]

    bundle = _bundle(user, "subroot", ["sh", "-c", "id -u; cat /proc/self/uid_map"], maps)
    result = user.run(OCIRUN, "run", "--bundle", bundle, "s1")
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["0", "0", str(start), str(size)]
    assert os.listdir(os.path.join(user.xdg, "ocirun")) == []


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
        result = user.run("script", "-qec", f"{OCIRUN} exec --tty life tty", "/dev/null")
        assert result.returncode == 0, result.stderr
        assert result.stdout.strip().endswith("/dev/pts/0")
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


@pytest.mark.guest  # (run in the cgroup v2 guest by tests/guest's plugin)
@pytest.mark.parametrize("runtime", RUNTIMES)
def test_cgroup_v2_delegated_subtree(user, runtime):
    """Where root delegates a subtree to the user (as systemd's Delegate=yes does), the
    container's cgroup goes next to the user's own, with its limits; elsewhere none at all."""
    top = "/sys/fs/cgroup"
    with open(f"{top}/cgroup.subtree_control", "w") as f:
        f.write("+memory +pids")
    delegated = f"{top}/{user.name}-{runtime}"
    os.makedirs(f"{delegated}/shell")
    try:
        for name in ("", "/cgroup.procs", "/cgroup.subtree_control", "/cgroup.threads"):
            os.chown(delegated + name, user.uid, user.gid)
        subprocess.run(["chown", "-R", f"{user.uid}:{user.gid}", f"{delegated}/shell"], check=True)
        limits = {"memory": {"limit": 64 << 20}, "pids": {"limit": 20}}
        bundle = _bundle(user, f"v2-{runtime}", ["sleep", "1000"],
                         lambda c: c["linux"].update(resources=limits))  # fmt: skip
        binary = RUNTIMES[runtime]
        result = user.run(binary, "create", "--bundle", bundle, "d1", cgroup=f"{delegated}/shell")
        assert result.returncode == 0, result.stderr
        try:
            with open(f"{delegated}/d1/memory.max") as f:
                assert f.read() == f"{64 << 20}\n"
            with open(f"{delegated}/d1/pids.max") as f:
                assert f.read() == "20\n"
            assert user.run(binary, "pause", "d1").returncode == 0
            with open(f"{delegated}/d1/cgroup.freeze") as f:
                assert f.read() == "1\n"
            assert user.run(binary, "resume", "d1").returncode == 0
        finally:
            assert user.run(binary, "delete", "--force", "d1").returncode == 0
        assert not os.path.exists(f"{delegated}/d1")
        result = user.run(binary, "run", "--bundle", bundle, "d2")  # not in the delegation
        assert result.returncode != 0 and "limit" in result.stderr
        bundle = _bundle(user, f"v2-none-{runtime}", ["ls", "/sys/fs/cgroup/cgroup.procs"])
        result = user.run(binary, "run", "--bundle", bundle, "d3")  # no limits: no cgroup
        assert result.returncode == 0, result.stderr
        assert os.listdir(os.path.join(user.xdg, runtime)) == []
    finally:
        for directory in (f"{delegated}/shell", delegated):
            if os.path.isdir(directory):
                os.rmdir(directory)
