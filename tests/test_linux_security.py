"""Process security with real containers: capabilities, no_new_privs, rlimits, umask, groups,
oom_score_adj, HOME, personality, I/O priority, scheduler and CPU affinity."""

import os
import subprocess

import pytest
from helpers import create_fails, created_pid, run_probe, status_field

CAP_KILL, CAP_NET_BIND_SERVICE = 5, 10


def status_of(ocirun, bundle, cid: str) -> str:
    return run_probe(ocirun, bundle, cid, "cat /proc/self/status")


def test_non_root_user_keeps_exactly_the_configured_capabilities(ocirun, make_bundle, cid):
    bundle = make_bundle()
    bundle.config["process"]["user"] = {"uid": 1000, "gid": 1000}
    bundle.config["process"]["capabilities"] = {
        "bounding": ["CAP_NET_BIND_SERVICE", "CAP_KILL"],
        "effective": ["CAP_NET_BIND_SERVICE"],
        "permitted": ["CAP_NET_BIND_SERVICE"],
        "inheritable": ["CAP_NET_BIND_SERVICE"],
        "ambient": ["CAP_NET_BIND_SERVICE"],
    }
    status = status_of(ocirun, bundle, cid)
    assert int(status_field(status, "CapBnd"), 16) == (1 << CAP_KILL) | (1 << CAP_NET_BIND_SERVICE)
    for field in ("CapEff", "CapPrm", "CapInh", "CapAmb"):
        assert int(status_field(status, field), 16) == 1 << CAP_NET_BIND_SERVICE, field
    assert status_field(status, "Uid").split() == ["1000"] * 4


def test_root_without_ambient_gets_the_listed_sets(ocirun, make_bundle, cid):
    bundle = make_bundle()
    bundle.config["process"]["capabilities"] = {"bounding": ["CAP_KILL"], "effective": ["CAP_KILL"],
                                                "permitted": ["CAP_KILL"]}  # fmt: skip
    status = status_of(ocirun, bundle, cid)
    assert int(status_field(status, "CapEff"), 16) == 1 << CAP_KILL
    assert int(status_field(status, "CapAmb"), 16) == 0


def test_an_unknown_capability_is_a_warning(ocirun, make_bundle, cid):
    bundle = make_bundle()
    bundle.config["process"]["capabilities"] = {"bounding": ["CAP_KILL", "CAP_NO_SUCH_THING"]}
    bundle.config["process"]["args"] = ["cat", "/proc/self/status"]
    result = ocirun("run", "--bundle", bundle.write(), cid)
    assert result.returncode == 0, result.stderr
    assert "CAP_NO_SUCH_THING" in result.stderr
    assert int(status_field(result.stdout, "CapBnd"), 16) == 1 << CAP_KILL


def test_no_new_privileges(ocirun, make_bundle, cid):
    bundle = make_bundle()
    bundle.config["process"]["noNewPrivileges"] = True
    assert status_field(status_of(ocirun, bundle, cid), "NoNewPrivs") == "1"
    bundle.config["process"]["noNewPrivileges"] = False
    assert status_field(status_of(ocirun, bundle, cid + "-2"), "NoNewPrivs") == "0"


def test_rlimits(ocirun, make_bundle, cid):
    bundle = make_bundle()
    bundle.config["process"]["rlimits"] = [
        {"type": "RLIMIT_NOFILE", "soft": 100, "hard": 200},
        {"type": "RLIMIT_CORE", "soft": 0, "hard": 0},
    ]
    assert run_probe(ocirun, bundle, cid, "ulimit -n; ulimit -Hn; ulimit -c") == "100\n200\n0\n"


def test_an_rlimit_the_host_cannot_grant_is_refused_clearly(ocirun, make_bundle, cid):
    import resource

    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    bundle = make_bundle()
    bundle.config["process"]["rlimits"] = [
        {"type": "RLIMIT_NOFILE", "soft": hard + 1, "hard": hard + 1}
    ]
    with open("/proc/self/status") as f:
        if int(status_field(f.read(), "CapEff"), 16) & (1 << 24):  # CAP_SYS_RESOURCE
            return  # a host that can grant it: nothing to refuse
    assert "RLIMIT_NOFILE" in create_fails(ocirun, bundle, cid)


@pytest.mark.parametrize("runtime", ["ocirun", "/usr/sbin/runc"])
def test_a_capability_the_runtime_does_not_hold_fails_create(
    ocirun, make_bundle, cid, tmp_path, runtime
):
    """Run under a bounding set without CAP_SYS_NICE, a config that asks for it fails at create
    (docker run then exits 125), as with runc, which applies capabilities before create returns."""
    bundle = make_bundle(["true"])
    for field in ("bounding", "effective", "permitted"):
        bundle.config["process"]["capabilities"][field].append("CAP_SYS_NICE")
    binary = ocirun.binary if runtime == "ocirun" else runtime
    root = ocirun.root if runtime == "ocirun" else tmp_path / "runc-state"
    with open(tmp_path / "stderr", "w+") as err:  # (a created container keeps a pipe open)
        result = subprocess.run(["setpriv", "--bounding-set=-sys_nice", binary, "--root",
                                 str(root), "create", "-b", bundle.write(), cid],
                                stdout=subprocess.DEVNULL, stderr=err, timeout=60)  # fmt: skip
        err.seek(0)
        stderr = err.read()
    subprocess.run([binary, "--root", str(root), "delete", "--force", cid], capture_output=True)
    assert result.returncode != 0
    assert "unable to apply caps: operation not permitted" in stderr
    if runtime == "ocirun":
        assert "CAP_SYS_NICE" in stderr and ocirun.ids() == []


def test_umask_given_and_inherited(ocirun, make_bundle, cid):
    bundle = make_bundle()
    bundle.config["process"]["user"] = {"uid": 0, "gid": 0, "umask": 0o077}
    assert status_field(status_of(ocirun, bundle, cid), "Umask") == "0077"
    bundle.config["process"]["user"] = {"uid": 0, "gid": 0}
    old = os.umask(0o027)
    try:
        assert status_field(status_of(ocirun, bundle, cid + "-2"), "Umask") == "0027"
    finally:
        os.umask(old)


def test_additional_gids_and_username_ignored(ocirun, make_bundle, cid):
    bundle = make_bundle()
    bundle.config["process"]["user"] = {"uid": 1000, "gid": 1001, "additionalGids": [5, 6],
                                        "username": "nobody-special"}  # fmt: skip
    assert run_probe(ocirun, bundle, cid, "id -u; id -g; id -G") == "1000\n1001\n1001 5 6\n"


def test_oom_score_adj(ocirun, make_bundle, cid):
    bundle = make_bundle()
    bundle.config["process"]["oomScoreAdj"] = 123
    assert run_probe(ocirun, bundle, cid, "cat /proc/self/oom_score_adj") == "123\n"


def test_home_from_the_containers_passwd_or_root(ocirun, make_bundle, cid):
    bundle = make_bundle()
    assert run_probe(ocirun, bundle, cid, "echo $HOME") == "/root\n"
    bundle.config["process"]["user"] = {"uid": 4242, "gid": 4242}
    assert run_probe(ocirun, bundle, cid + "-2", "echo $HOME") == "/\n"
    bundle.config["process"]["env"].append("HOME=/given")
    assert run_probe(ocirun, bundle, cid + "-3", "echo $HOME") == "/given\n"


def test_personality_linux32(ocirun, make_bundle, cid):
    bundle = make_bundle()
    bundle.config["linux"]["personality"] = {"domain": "LINUX32"}
    machine = run_probe(ocirun, bundle, cid, "uname -m").strip()
    assert machine in ("i686", "armv8l", "armv7l"), machine


def test_io_priority_scheduler_and_cpu_affinity_seen_from_the_host(ocirun, make_bundle, cid):
    bundle = make_bundle(["sleep", "60"])
    bundle.config["process"]["ioPriority"] = {"class": "IOPRIO_CLASS_BE", "priority": 6}
    bundle.config["process"]["scheduler"] = {"policy": "SCHED_BATCH", "nice": 5}
    bundle.config["process"]["execCPUAffinity"] = {"initial": "0"}
    pid = created_pid(ocirun, bundle, cid)
    ocirun("start", cid, check=True)
    io = subprocess.run(["ionice", "-p", str(pid)], capture_output=True, text=True).stdout
    assert io.strip() == "best-effort: prio 6"
    sched = subprocess.run(["chrt", "-p", str(pid)], capture_output=True, text=True).stdout
    assert "SCHED_BATCH" in sched
    assert os.sched_getaffinity(pid) == {0}
    with open(f"/proc/{pid}/stat") as f:
        assert int(f.read().rsplit(")", 1)[1].split()[16]) == 5  # nice
    ocirun("delete", "--force", cid, check=True)


def test_a_missing_cwd_is_created_even_on_a_read_only_root(ocirun, make_bundle, cid, rootfs):
    bundle = make_bundle()
    bundle.own_rootfs(rootfs)  # the cwd is created in the rootfs: not in the shared one
    bundle.config["root"]["readonly"] = True
    bundle.config["process"]["cwd"] = "/run/made/here"
    assert run_probe(ocirun, bundle, cid, "pwd") == "/run/made/here\n"


def test_memory_policy(ocirun, make_bundle, cid):
    bundle = make_bundle()
    bundle.config["linux"]["memoryPolicy"] = {"mode": "MPOL_BIND", "nodes": "0"}
    out = run_probe(ocirun, bundle, cid, "grep -m1 . /proc/self/numa_maps")
    assert "bind:0" in out
    bundle.config["linux"]["memoryPolicy"] = {"mode": "MPOL_LOCAL", "nodes": "0"}  # EINVAL
    result = ocirun("create", "-b", bundle.write(), f"{cid}-2")
    assert result.returncode == 1 and "linux.memoryPolicy" in result.stderr
    assert f"{cid}-2" not in ocirun.ids()


def test_seccomp_is_enforced_and_notify_without_a_listener_is_refused(ocirun, make_bundle, cid):
    bundle = make_bundle()
    rule = {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 28}
    bundle.config["linux"]["seccomp"] = {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [rule]}
    out = run_probe(
        ocirun, bundle, cid, "grep Seccomp: /proc/self/status; mkdir /dev/shm/x 2>&1; true"
    )
    assert out.split()[:2] == ["Seccomp:", "2"] and "No space left on device" in out
    rule["action"] = "SCMP_ACT_NOTIFY"
    del rule["errnoRet"]
    result = ocirun("create", "-b", bundle.write(), f"{cid}-2")
    assert result.returncode == 1 and "SCMP_ACT_NOTIFY" in result.stderr
