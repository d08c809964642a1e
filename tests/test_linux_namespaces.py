"""Linux namespaces with real containers: new, joined by path, user mappings, time offsets."""

import os

import pytest
from helpers import (
    add_userns,
    create_fails,
    created_pid,
    has_ns,
    run_probe,
    status_field,
)  # fmt: skip


def test_new_namespaces_differ_from_the_host(ocirun, make_bundle, cid):
    bundle = make_bundle()
    bundle.config["linux"]["namespaces"].append({"type": "cgroup"})
    names = ("pid", "mnt", "uts", "ipc", "net", "cgroup")
    script = "; ".join(f"readlink /proc/self/ns/{n}" for n in names)
    inside = run_probe(ocirun, bundle, cid, script).split()
    host = [os.readlink(f"/proc/self/ns/{n}") for n in names]
    assert all(a != b for a, b in zip(inside, host, strict=True)), (inside, host)


def test_pid_namespace_makes_the_program_pid_1(ocirun, make_bundle, cid):
    assert run_probe(ocirun, make_bundle(), cid, "echo $$") == "1\n"


def test_hostname_and_domainname(ocirun, make_bundle, cid):
    bundle = make_bundle()
    bundle.config["hostname"] = "box"
    bundle.config["domainname"] = "example.test"
    out = run_probe(ocirun, bundle, cid, "hostname; cat /proc/sys/kernel/domainname")
    assert out == "box\nexample.test\n"


def test_join_a_namespace_by_path(ocirun, make_bundle, cid):
    first = make_bundle(["sleep", "60"])
    first.config["hostname"] = "first-box"
    pid = created_pid(ocirun, first, cid)
    second = make_bundle()
    second.config.pop("hostname", None)
    for ns in second.config["linux"]["namespaces"]:
        if ns["type"] == "uts":
            ns["path"] = f"/proc/{pid}/ns/uts"
    assert run_probe(ocirun, second, cid + "-2", "hostname") == "first-box\n"


def test_joining_a_namespace_of_the_wrong_type_is_a_clear_error(ocirun, make_bundle, cid):
    bundle = make_bundle()
    for ns in bundle.config["linux"]["namespaces"]:
        if ns["type"] == "network":
            ns["path"] = "/proc/self/ns/uts"
    error = create_fails(ocirun, bundle, cid)
    assert "not a network namespace" in error


def test_a_missing_namespace_path_is_a_clear_error(ocirun, make_bundle, cid, tmp_path):
    bundle = make_bundle()
    missing = str(tmp_path / "no-such-netns")
    for ns in bundle.config["linux"]["namespaces"]:
        if ns["type"] == "network":
            ns["path"] = missing
    assert missing in create_fails(ocirun, bundle, cid)


def test_a_relative_namespace_path_is_refused(ocirun, make_bundle, cid):
    bundle = make_bundle()
    bundle.config["linux"]["namespaces"].append({"type": "cgroup", "path": "proc/1/ns/cgroup"})
    assert "not absolute" in create_fails(ocirun, bundle, cid)


def test_user_namespace_mappings_inside_and_from_the_host(ocirun, make_bundle, cid, userns_rootfs):
    bundle = make_bundle(["sleep", "60"])
    add_userns(bundle.config, userns_rootfs)
    bundle.config["linux"]["gidMappings"] = [
        {"containerID": 0, "hostID": 200000, "size": 1000},
        {"containerID": 1000, "hostID": 300000, "size": 10},
    ]
    pid = created_pid(ocirun, bundle, cid)
    with open(f"/proc/{pid}/uid_map") as f:
        assert f.read().split() == ["0", "100000", "65536"]
    with open(f"/proc/{pid}/gid_map") as f:
        assert f.read().split() == ["0", "200000", "1000", "1000", "300000", "10"]
    with open(f"/proc/{pid}/status") as f:
        status = f.read()
    assert (
        status_field(status, "Uid").split()[0] == "100000"
    )  # the container's root, seen from host
    ocirun("delete", "--force", cid, check=True)


def test_user_namespace_container_sees_itself_as_root(ocirun, make_bundle, cid, userns_rootfs):
    bundle = make_bundle()
    add_userns(bundle.config, userns_rootfs)
    out = run_probe(ocirun, bundle, cid, "id -u; cat /proc/self/uid_map; ls -ln /dev/null")
    lines = out.splitlines()
    assert lines[0] == "0"
    assert lines[1].split() == ["0", "100000", "65536"]
    assert lines[2].startswith("crw")  # the host's node, bound in (mknod is not allowed)


def test_user_namespace_with_a_mapped_non_root_user(ocirun, make_bundle, cid, userns_rootfs):
    bundle = make_bundle()
    add_userns(bundle.config, userns_rootfs)
    bundle.config["process"]["user"] = {"uid": 1000, "gid": 1000}
    assert run_probe(ocirun, bundle, cid, "id -u; id -g") == "1000\n1000\n"


def test_user_namespace_with_oom_score_adj_in_the_init_and_in_exec(
    ocirun, make_bundle, cid, userns_rootfs
):
    """/proc/self/oom_score_adj belongs to an unmapped uid inside a new user namespace: it is
    written before entering it, as runc does (docker --userns-remap sets oomScoreAdj 0)."""
    bundle = make_bundle(["sh", "-c", "cat /proc/self/oom_score_adj; sleep 60"])
    add_userns(bundle.config, userns_rootfs)
    bundle.config["process"]["oomScoreAdj"] = 123
    ocirun("run", "-d", "-b", bundle.write(), cid, check=True)
    exec_out = ocirun("exec", cid, "cat", "/proc/self/oom_score_adj", check=True).stdout
    assert exec_out.strip() == "123"
    ocirun("delete", "--force", cid, check=True)
    bundle.config["process"]["args"] = ["cat", "/proc/self/oom_score_adj"]
    assert ocirun("run", "-b", bundle.write(), cid, check=True).stdout.strip() == "123"


@pytest.mark.skipif(not has_ns("time"), reason="no time namespaces on this kernel")
def test_time_namespace_offsets_apply_to_the_first_process(ocirun, make_bundle, cid):
    bundle = make_bundle()
    bundle.config["linux"]["namespaces"].append({"type": "time"})
    bundle.config["linux"]["timeOffsets"] = {"boottime": {"secs": 10 * 86400},
                                             "monotonic": {"secs": 86400}}  # fmt: skip
    uptime = float(run_probe(ocirun, bundle, cid, "cat /proc/uptime").split()[0])
    with open("/proc/uptime") as f:
        host_uptime = float(f.read().split()[0])
    assert uptime - host_uptime > 10 * 86400 - 60


@pytest.mark.skipif(not has_ns("time"), reason="no time namespaces on this kernel")
def test_time_offsets_in_a_user_namespace(ocirun, make_bundle, cid, userns_rootfs):
    """The offsets are written by the container's root (host uid 100000) of its own namespace."""
    bundle = make_bundle()
    add_userns(bundle.config, userns_rootfs)
    bundle.config["linux"]["namespaces"].append({"type": "time"})
    bundle.config["linux"]["timeOffsets"] = {"boottime": {"secs": 10 * 86400}}
    uptime = float(run_probe(ocirun, bundle, cid, "cat /proc/uptime").split()[0])
    with open("/proc/uptime") as f:
        host_uptime = float(f.read().split()[0])
    assert uptime - host_uptime > 10 * 86400 - 60


def test_time_offsets_without_a_time_namespace_are_refused(ocirun, make_bundle, cid):
    bundle = make_bundle()
    bundle.config["linux"]["timeOffsets"] = {"monotonic": {"secs": 1}}
    assert "time namespace" in create_fails(ocirun, bundle, cid)


@pytest.mark.parametrize(
    "namespaces, extra, direct",
    [
        ([{"type": t} for t in ("pid", "network", "ipc", "uts", "mount")], {}, True),
        ([{"type": "mount"}], {}, True),
        ([{"type": "pid"}, {"type": "network", "path": "/proc/1/ns/net"}], {}, False),
        ([{"type": "pid"}, {"type": "user"}], {}, False),
        ([{"type": "pid"}, {"type": "time"}], {}, False),
        ([{"type": "mount"}], {"mounts": [{"destination": "/x", "options": ["idmap"]}]}, False),
    ],
)
def test_which_configs_get_their_init_from_one_clone3(namespaces, extra, direct):
    """Stage 1 is skipped only where one clone3 can make every namespace (process/stage1.py)."""
    from ocirun.config import Config
    from ocirun.process.init import Plan
    from ocirun.process.stage1 import _can_fork_directly

    config = {"process": {}, "linux": {"namespaces": namespaces}, **extra}
    assert _can_fork_directly(Plan(Config(config), "/b", "/b/rootfs", -1, False, 0)) == direct
