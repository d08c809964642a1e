"""linux.resources and cgroup placement, seen on real containers.

This host has v1 controllers and a cgroup2 hierarchy with hugetlb; a unified host drives the same
Manager through ocirun/cgroups/v2."""

import time
from pathlib import Path

from helpers import cgroup_dirs

LIMITS = {
    "memory": {"limit": 64 * 1024 * 1024},
    "cpu": {"quota": 50000, "period": 100000, "cpus": "0"},
    "pids": {"limit": 20},
    "devices": [
        {"allow": False, "access": "rwm"},
        {"allow": True, "type": "c", "major": 1, "minor": 3, "access": "rw"},
    ],
}


def hierarchy_file(cgroups_path: str, hierarchy: str, name: str) -> str:
    for directory in cgroup_dirs(cgroups_path):
        if hierarchy in Path(directory).relative_to("/sys/fs/cgroup").parts[0].split(","):
            return (Path(directory) / name).read_text()
    raise AssertionError(f"no {hierarchy} hierarchy holds {cgroups_path}")


def test_limits_land_in_the_cgroup_files(ocirun, make_bundle, cid, tmp_path):
    bundle = make_bundle(["sleep", "100"])
    bundle.config["linux"]["resources"].update(LIMITS)
    pid_file = tmp_path / "pid"
    ocirun("create", "-b", bundle.write(), "--pid-file", str(pid_file), cid, check=True)
    path = bundle.config["linux"]["cgroupsPath"]
    assert hierarchy_file(path, "memory", "memory.limit_in_bytes").strip() == str(64 << 20)
    assert hierarchy_file(path, "cpu", "cpu.cfs_quota_us").strip() == "50000"
    assert hierarchy_file(path, "cpu", "cpu.cfs_period_us").strip() == "100000"
    assert hierarchy_file(path, "cpuset", "cpuset.cpus").strip() == "0"
    assert hierarchy_file(path, "pids", "pids.max").strip() == "20"
    assert "c 1:3 rw" in hierarchy_file(path, "devices", "devices.list")
    pid = pid_file.read_text()
    for directory in cgroup_dirs(path):  # the init is in its cgroup before its program runs
        assert pid in (Path(directory) / "cgroup.procs").read_text().split()
    ocirun("delete", cid, check=True)
    assert not cgroup_dirs(path)


def test_pids_limit_holds_inside_the_container(ocirun, make_bundle, cid):
    # the inner shell forks 40 sleepers and dies at the first refused fork (ash does); the
    # outer one then becomes a sleeper itself, without forking, so the host can count
    forks = "i=0; while [ $i -lt 40 ]; do sleep 30 & i=$((i+1)); done"
    bundle = make_bundle(["sh", "-c", f"sh -c '{forks}' 2>/dev/null; exec sleep 30"])
    bundle.config["linux"]["resources"]["pids"] = {"limit": 10}
    ocirun("create", "-b", bundle.write(), cid, check=True)
    ocirun("start", cid, check=True)
    path = bundle.config["linux"]["cgroupsPath"]
    deadline = time.monotonic() + 5
    while "max 0" in hierarchy_file(path, "pids", "pids.events"):
        assert time.monotonic() < deadline, "no fork was ever refused"
        time.sleep(0.05)
    assert 1 < int(hierarchy_file(path, "pids", "pids.current")) <= 10


def test_memory_limit_kills_a_large_allocation(ocirun, make_bundle, cid):
    # tail keeps the whole 100 MB stream in memory when asked for more lines than there are
    bundle = make_bundle(["sh", "-c", "head -c 100000000 /dev/zero | tail -n 2; echo status=$?"])
    bundle.config["linux"]["resources"]["memory"] = {"limit": 32 << 20, "swap": 32 << 20}
    result = ocirun("run", "-b", bundle.write(), cid)
    # tail is OOM-killed (SIGKILL); now and then the kernel kills the shell too, before tail's
    # memory is reaped (runc: 3 runs in 30 here), and then `run` itself reports the SIGKILL
    killed_tail = result.stdout.split()[-1:] == ["status=137"]
    assert killed_tail or (result.returncode == 137 and not result.stdout.strip()), result


def test_kill_all_leaves_no_process(ocirun, make_bundle, cid):
    bundle = make_bundle(["sh", "-c", "sleep 100 & sleep 100 & sleep 100"])
    ocirun("create", "-b", bundle.write(), cid, check=True)
    ocirun("start", cid, check=True)
    time.sleep(0.2)
    path = bundle.config["linux"]["cgroupsPath"]
    assert len(hierarchy_file(path, "pids", "cgroup.procs").split()) == 3
    ocirun("kill", "--all", cid, "KILL", check=True)
    deadline = time.monotonic() + 5
    while hierarchy_file(path, "pids", "cgroup.procs").split():
        assert time.monotonic() < deadline, "processes survived kill --all"
        time.sleep(0.05)
    ocirun("delete", cid, check=True)
    assert not cgroup_dirs(path)


def test_cgroup_namespace_shows_its_own_cgroup_as_root(ocirun, make_bundle, cid):
    bundle = make_bundle(["cat", "/proc/self/cgroup"])
    bundle.config["linux"]["namespaces"].append({"type": "cgroup"})
    out = ocirun("run", "-b", bundle.write(), cid, check=True).stdout
    for line in out.splitlines():
        assert line.endswith(":/"), out


def test_cgroup_mount_shows_the_containers_cgroup(ocirun, make_bundle, cid):
    bundle = make_bundle(
        ["cat", "/sys/fs/cgroup/pids/pids.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"]
    )
    bundle.config["linux"]["resources"]["pids"] = {"limit": 33}
    bundle.config["linux"]["resources"]["memory"] = {"limit": 48 << 20}
    out = ocirun("run", "-b", bundle.write(), cid, check=True).stdout.split()
    assert out == ["33", str(48 << 20)]


def test_created_init_is_in_its_cgroup_in_every_hierarchy(ocirun, make_bundle, cid, tmp_path):
    """Before `start` too: the init joins the v1 memory cgroup last, but before it is ready."""
    bundle = make_bundle(["true"])
    pid_file = tmp_path / "init.pid"
    ocirun("create", "-b", bundle.write(), "--pid-file", str(pid_file), cid, check=True)
    with open(f"/proc/{pid_file.read_text()}/cgroup") as f:
        lines = f.read().splitlines()
    path = bundle.config["linux"]["cgroupsPath"]
    assert lines and all(line.endswith(f":{path}") for line in lines), lines


def test_a_container_runs_under_a_1_mib_memory_limit(ocirun, make_bundle, cid):
    """The memory goal (runc needs ~2.4 MiB here): what the init's setup dirties stays charged
    to ocirun's cgroup (cgroups.Entry.join_memory), so only the program counts."""
    for attempt in range(3):
        bundle = make_bundle(["true"])
        bundle.config["linux"]["resources"]["memory"] = {"limit": 1 << 20, "swap": 1 << 20}
        result = ocirun("run", "-b", bundle.write(), f"{cid}-{attempt}")
        assert result.returncode == 0, result.stderr
