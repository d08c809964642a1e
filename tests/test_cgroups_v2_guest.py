"""The cgroup v2 driver on a real unified hierarchy: real containers in a user-mode-linux guest
(tests/guest), with ocirun and, where runc 1.1 does the same thing, runc side by side.

Every test here is marked `guest`: on the host, one guest boot runs them all and each reports
its outcome (tests/guest/pytest_plugin.py). The guest's cgroup2 root offers cpu, io, memory
and pids; it has no cpuset, hugetlb or rdma controller and no io.weight (see
tests/guest/README.md).
"""

import json
import os
import subprocess
import time
import uuid
from pathlib import Path

import pytest
from helpers import CGROUP_PREFIX, Runtime
from test_cgroup_frozen import frozen_cgroup, refused_quickly, thaw_and_remove

pytestmark = pytest.mark.guest

ROOT = Path("/sys/fs/cgroup")
RUNC = "/usr/sbin/runc"
DISK = "/dev/ubda"  # the guest's block device (98:0)
MiB = 1 << 20


@pytest.fixture(params=["ocirun", "runc"])
def runtime(request, ocirun, tmp_path):
    """ocirun, then runc, each with a private state root; containers force-deleted after."""
    if request.param == "ocirun":
        yield ocirun
        return
    runc = Runtime(tmp_path / "runc-state", RUNC)
    yield runc
    runc.cleanup()


def cgroup(bundle) -> Path:
    return ROOT / bundle.config["linux"]["cgroupsPath"].lstrip("/")


def read(bundle, name: str) -> str:
    return (cgroup(bundle) / name).read_text().strip()


def events(bundle, name: str = "memory.events") -> dict[str, int]:
    return {k: int(v) for k, v in (line.split() for line in read(bundle, name).splitlines())}


def run_detached(runtime, bundle, cid: str) -> None:
    """create + start: the container runs its program in the background."""
    runtime("create", "--bundle", bundle.write(), cid, check=True)
    runtime("start", cid, check=True)


def run_to_end(runtime, bundle, cid: str, timeout: float = 60):
    """`run` in the foreground: the container's exit status and output."""
    return runtime("run", "--bundle", bundle.write(), cid, timeout=timeout)


def wait_until(check, what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def test_the_guest_is_a_unified_host():
    assert os.environ.get("OCIRUN_IN_GUEST") == "1"
    assert not (ROOT / "memory").exists()
    assert set((ROOT / "cgroup.controllers").read_text().split()) >= {"cpu", "io", "memory", "pids"}


LIMITS = {
    "memory": {"limit": 64 * MiB, "reservation": 16 * MiB, "swap": 96 * MiB},
    "pids": {"limit": 20},
    "cpu": {"shares": 512, "quota": 20000, "period": 100000},
}


def test_limits_land_in_the_v2_files_as_runc_writes_them(ocirun, make_bundle, cid, tmp_path):
    runc = Runtime(tmp_path / "runc-state", RUNC)
    files = ["memory.max", "memory.low", "memory.swap.max", "pids.max", "cpu.weight", "cpu.max"]
    seen = {}
    try:
        for name, runtime in (("ocirun", ocirun), ("runc", runc)):
            bundle = make_bundle(["sleep", "100"], name=name)
            bundle.config["linux"]["resources"].update(LIMITS)
            run_detached(runtime, bundle, f"{cid}-{name}")
            seen[name] = {f: read(bundle, f) for f in files}
    finally:
        runc.cleanup()
    assert seen["ocirun"] == {
        "memory.max": str(64 * MiB),
        "memory.low": str(16 * MiB),
        "memory.swap.max": str(32 * MiB),  # the spec's swap is memory+swap
        "pids.max": "20",
        "cpu.weight": "20",  # runc's shares→weight formula: 1 + (512-2)*9999/262142
        "cpu.max": "20000 100000",
    }
    assert seen["ocirun"] == seen["runc"]


def test_cpu_burst_idle_and_oom_group(ocirun, make_bundle, cid):
    bundle = make_bundle(["sleep", "100"])
    bundle.config["linux"]["resources"].update(
        {"cpu": {"quota": 50000, "period": 100000, "burst": 20000, "idle": 1}}
    )
    bundle.config["linux"]["resources"]["unified"] = {"memory.oom.group": "1"}
    run_detached(ocirun, bundle, cid)
    assert read(bundle, "cpu.max") == "50000 100000"
    assert read(bundle, "cpu.max.burst") == "20000"
    assert read(bundle, "cpu.idle") == "1"
    assert read(bundle, "memory.oom.group") == "1"


def test_an_allocation_past_memory_max_is_killed(runtime, make_bundle, cid):
    """`tail /dev/zero` keeps its never-ending line in memory until the kernel kills it."""
    bundle = make_bundle(["tail", "/dev/zero"])
    bundle.config["linux"]["resources"]["memory"] = {"limit": 32 * MiB, "swap": 32 * MiB}
    result = run_to_end(runtime, bundle, cid)
    assert result.returncode == 137, result  # SIGKILL
    # the cgroup is gone with the container: what the kernel counted is in the parent's
    # memory.events.local only for its own processes, so look at the container while it ran
    bundle2 = make_bundle(["sh", "-c", "tail /dev/zero; sleep 100"], name="again")
    bundle2.config["linux"]["resources"]["memory"] = {"limit": 32 * MiB, "swap": 32 * MiB}
    run_detached(runtime, bundle2, cid + "-2")
    wait_until(lambda: events(bundle2)["oom_kill"] >= 1, "the OOM kill in memory.events")
    assert int(read(bundle2, "memory.peak")) <= 32 * MiB
    assert events(bundle2)["max"] >= 1


def test_forks_past_pids_max_fail(runtime, make_bundle, cid):
    script = "for i in $(seq 40); do sleep 100 & done 2>/dev/null; sleep 100"
    bundle = make_bundle(["sh", "-c", script])
    bundle.config["linux"]["resources"]["pids"] = {"limit": 10}
    run_detached(runtime, bundle, cid)
    wait_until(lambda: events(bundle, "pids.events")["max"] >= 1, "pids.events max")
    assert int(read(bundle, "pids.current")) <= 10
    assert len(read(bundle, "cgroup.procs").split()) <= 10


def test_cpu_max_throttles_a_spinning_container(ocirun, make_bundle, cid):
    bundle = make_bundle(["sh", "-c", "while :; do :; done"])
    bundle.config["linux"]["resources"]["cpu"] = {"quota": 10000, "period": 100000}
    run_detached(ocirun, bundle, cid)

    def throttled() -> bool:
        stat = dict(line.split() for line in read(bundle, "cpu.stat").splitlines())
        return int(stat["nr_throttled"]) > 0 and int(stat["throttled_usec"]) > 0

    wait_until(throttled, "cpu.stat to count throttled periods")


def test_io_max_on_the_guest_disk(runtime, make_bundle, cid):
    dev = os.stat(DISK).st_rdev
    major, minor = os.major(dev), os.minor(dev)
    bundle = make_bundle(["sh", "-c", "dd if=/dev/ubda of=/dev/null bs=4096 count=64; sleep 100"])
    resources = bundle.config["linux"]["resources"]
    resources["blockIO"] = {
        "throttleReadBpsDevice": [{"major": major, "minor": minor, "rate": 4 * MiB}],
        "throttleWriteIOPSDevice": [{"major": major, "minor": minor, "rate": 100}],
    }
    resources["devices"].append(
        {"allow": True, "type": "b", "major": major, "minor": minor, "access": "r"}
    )
    bundle.config["linux"]["devices"] = [
        {"path": DISK, "type": "b", "major": major, "minor": minor}
    ]
    run_detached(runtime, bundle, cid)
    assert read(bundle, "io.max") == f"{major}:{minor} rbps={4 * MiB} wbps=max riops=max wiops=100"

    def read_counted() -> bool:
        stat = {line.split()[0]: line for line in read(bundle, "io.stat").splitlines()}
        line = stat.get(f"{major}:{minor}", "")
        return "rbytes=" in line and int(line.split("rbytes=")[1].split()[0]) > 0

    wait_until(read_counted, "io.stat to count the container's reads")


def test_io_weight_is_refused_where_the_kernel_has_no_io_weight(ocirun, make_bundle, cid):
    """This kernel has no io.weight file (no iocost, no BFQ groups): asking for one fails."""
    bundle = make_bundle(["true"])
    bundle.config["linux"]["resources"]["blockIO"] = {"weight": 500}
    result = ocirun("run", "--bundle", bundle.write(), cid)
    assert result.returncode != 0
    assert "io.weight" in result.stderr or "io.bfq.weight" in result.stderr, result.stderr
    assert not cgroup(bundle).exists()


def test_the_device_filter_refuses_what_the_rules_do_not_allow(runtime, make_bundle, cid):
    script = (
        "mknod /tmp/kmsg c 1 11; head -c 1 /tmp/kmsg >/dev/null 2>&1 && echo kmsg-open;"
        " echo x >/dev/null && echo null-ok"
    )
    bundle = make_bundle(["sh", "-c", script])
    bundle.own_rootfs(bundle.config["root"]["path"])
    result = run_to_end(runtime, bundle, cid)
    assert result.returncode == 0, result
    assert "null-ok" in result.stdout
    assert "kmsg-open" not in result.stdout


def test_pause_and_resume_freeze_and_thaw_the_cgroup(runtime, make_bundle, cid):
    bundle = make_bundle(["sleep", "100"])
    run_detached(runtime, bundle, cid)
    runtime("pause", cid, check=True)
    assert read(bundle, "cgroup.freeze") == "1"
    assert "frozen 1" in read(bundle, "cgroup.events").splitlines()
    assert runtime.state(cid)["status"] == "paused"
    runtime("resume", cid, check=True)
    assert read(bundle, "cgroup.freeze") == "0"
    assert runtime.state(cid)["status"] == "running"


def test_delete_force_kills_every_process_of_the_cgroup(runtime, make_bundle, cid):
    bundle = make_bundle(["sh", "-c", "sleep 100 & sleep 100 & sleep 100"])
    run_detached(runtime, bundle, cid)
    wait_until(lambda: len(read(bundle, "cgroup.procs").split()) == 3, "three processes")
    pids = [int(p) for p in read(bundle, "cgroup.procs").split()]
    runtime("delete", "--force", cid, check=True)
    assert not cgroup(bundle).exists()
    for pid in pids:
        assert not Path(f"/proc/{pid}").exists() or "Z" in Path(f"/proc/{pid}/stat").read_text()


def test_events_stats(ocirun, make_bundle, cid):
    bundle = make_bundle(["sleep", "100"])
    bundle.config["linux"]["resources"]["memory"] = {"limit": 64 * MiB}
    bundle.config["linux"]["resources"]["pids"] = {"limit": 20}
    run_detached(ocirun, bundle, cid)
    stats = json.loads(ocirun("events", "--stats", cid, check=True).stdout)
    assert stats["type"] == "stats"
    data = stats["data"]
    assert data["pids"] == {"current": 1, "limit": 20}
    assert data["memory"]["usage"]["limit"] == 64 * MiB
    assert data["memory"]["usage"]["usage"] > 0
    assert data["cpu"]["usage"]["total"] > 0


def test_events_reports_the_oom_kill(ocirun, make_bundle, cid, tmp_path):
    bundle = make_bundle(["sh", "-c", "sleep 1; tail /dev/zero; sleep 100"])
    bundle.config["linux"]["resources"]["memory"] = {"limit": 32 * MiB, "swap": 32 * MiB}
    ocirun("create", "--bundle", bundle.write(), cid, check=True)
    out = tmp_path / "events"
    with open(out, "w") as sink:
        watcher = subprocess.Popen(
            [ocirun.binary, "--root", str(ocirun.root), "events", "--interval", "1h", cid],
            stdout=sink,
        )
    try:
        ocirun("start", cid, check=True)
        wait_until(lambda: '"oom"' in out.read_text(), "an oom event from `events`")
    finally:
        watcher.kill()
        watcher.wait()
    event = next(json.loads(line) for line in out.read_text().splitlines() if '"oom"' in line)
    assert event == {"type": "oom", "id": cid}


def test_update_changes_the_v2_files(runtime, make_bundle, cid):
    bundle = make_bundle(["sleep", "100"])
    bundle.config["linux"]["resources"].update(LIMITS)
    run_detached(runtime, bundle, cid)
    runtime(
        "update", "--memory", "128m", "--memory-swap", "256m", "--pids-limit", "30",
        "--cpu-quota", "40000", "--cpu-period", "200000", cid, check=True,
    )  # fmt: skip
    assert read(bundle, "memory.max") == str(128 * MiB)
    assert read(bundle, "memory.swap.max") == str(128 * MiB)
    assert read(bundle, "pids.max") == "30"
    assert read(bundle, "cpu.max") == "40000 200000"


def test_nested_cgroups_path_enables_controllers_down_the_path(ocirun, make_bundle, cid):
    bundle = make_bundle(["sleep", "100"])
    top = f"{CGROUP_PREFIX}/nest-{uuid.uuid4().hex[:6]}"
    bundle.config["linux"]["cgroupsPath"] = f"{top}/a/b"
    bundle.config["linux"]["resources"]["memory"] = {"limit": 64 * MiB}
    bundle.config["linux"]["resources"]["pids"] = {"limit": 9}
    run_detached(ocirun, bundle, cid)
    assert read(bundle, "memory.max") == str(64 * MiB)
    assert read(bundle, "pids.max") == "9"
    for level in (ROOT / top.lstrip("/"), ROOT / top.lstrip("/") / "a"):
        assert {"memory", "pids"} <= set((level / "cgroup.subtree_control").read_text().split())
    ocirun("delete", "--force", cid, check=True)
    assert not (ROOT / top.lstrip("/")).exists(), "delete left the parents create made"


def test_cgroup_namespace_and_cgroup2_mount_inside(runtime, make_bundle, cid):
    script = "cat /proc/self/cgroup; cat /sys/fs/cgroup/pids.max; grep cgroup2 /proc/self/mounts"
    bundle = make_bundle(["sh", "-c", script])
    bundle.config["linux"]["namespaces"].append({"type": "cgroup"})
    bundle.config["linux"]["resources"]["pids"] = {"limit": 12}
    result = run_to_end(runtime, bundle, cid)
    assert result.returncode == 0, result
    lines = result.stdout.splitlines()
    assert lines[0] == "0::/"
    assert lines[1] == "12"
    assert lines[2].split()[1:3] == ["/sys/fs/cgroup", "cgroup2"]


def test_user_namespace_without_cgroup_namespace_binds_the_cgroup(runtime, make_bundle, cid):
    """The kernel refuses a cgroup2 mount in a user namespace without a cgroup namespace of
    its own (EPERM): ocirun binds the container's cgroup at /sys/fs/cgroup, read-only; runc
    1.1 binds the whole hierarchy (its root has no pids.max)."""
    script = "grep ' /sys/fs/cgroup ' /proc/self/mounts; cat /sys/fs/cgroup/pids.max"
    bundle = make_bundle(["sh", "-c", script])
    linux = bundle.config["linux"]
    linux["namespaces"].append({"type": "user"})
    linux["uidMappings"] = [{"hostID": 0, "containerID": 0, "size": 65536}]
    linux["gidMappings"] = [{"hostID": 0, "containerID": 0, "size": 65536}]
    linux["resources"]["pids"] = {"limit": 13}
    result = run_to_end(runtime, bundle, cid)
    mount = result.stdout.splitlines()[0].split()
    assert mount[1:3] == ["/sys/fs/cgroup", "cgroup2"], result
    assert "ro" in mount[3].split(",")
    if runtime.binary == RUNC:
        assert "pids.max" in result.stderr, result
    else:
        assert result.returncode == 0, result
        assert result.stdout.splitlines()[1] == "13"


def test_unified_keys(runtime, make_bundle, cid):
    bundle = make_bundle(["sleep", "100"])
    bundle.config["linux"]["resources"]["unified"] = {
        "memory.high": str(48 * MiB),
        "pids.max": "7",
        "cpu.weight": "300",
    }
    run_detached(runtime, bundle, cid)
    assert read(bundle, "memory.high") == str(48 * MiB)
    assert read(bundle, "pids.max") == "7"
    assert read(bundle, "cpu.weight") == "300"


def test_unified_key_of_a_missing_controller_is_refused(ocirun, make_bundle, cid):
    bundle = make_bundle(["true"])
    bundle.config["linux"]["resources"]["unified"] = {"hugetlb.2MB.max": "0"}
    result = ocirun("run", "--bundle", bundle.write(), cid)
    assert result.returncode != 0
    assert "hugetlb" in result.stderr, result.stderr
    assert not cgroup(bundle).exists()


def test_no_internal_processes(ocirun, make_bundle, cid):
    """A container in a cgroup whose parent holds a process: the parent cannot give the child
    domain controllers (EBUSY), so a memory limit is refused with a clear error."""
    parent = f"{CGROUP_PREFIX}/busy-{uuid.uuid4().hex[:6]}"
    (ROOT / parent.lstrip("/")).mkdir(parents=True)
    sleeper = subprocess.Popen(["sleep", "100"])
    try:
        (ROOT / parent.lstrip("/") / "cgroup.procs").write_text(str(sleeper.pid))
        bundle = make_bundle(["true"])
        bundle.config["linux"]["cgroupsPath"] = f"{parent}/child"
        bundle.config["linux"]["resources"]["memory"] = {"limit": 64 * MiB}
        result = ocirun("run", "--bundle", bundle.write(), cid)
        assert result.returncode != 0
        assert "memory" in result.stderr, result.stderr
        assert not cgroup(bundle).exists()
    finally:
        sleeper.kill()
        sleeper.wait()


def test_create_refuses_a_cgroup_frozen_on_v2(runtime, make_bundle, cid):
    path = f"{CGROUP_PREFIX}/frozen-{uuid.uuid4().hex[:8]}"
    try:
        freezer = frozen_cgroup(path)
        assert freezer.name == "cgroup.freeze"
        stderr = refused_quickly(runtime, make_bundle, cid, path)
        assert "container's cgroup unexpectedly frozen" in stderr
        assert freezer.exists()
    finally:
        thaw_and_remove(path)


def test_create_refuses_a_cgroup_frozen_with_its_parent_on_v2(ocirun, make_bundle, cid):
    path = f"{CGROUP_PREFIX}/frozen-{uuid.uuid4().hex[:8]}"
    try:
        frozen_cgroup(path)
        stderr = refused_quickly(ocirun, make_bundle, cid, f"{path}/child")
        assert "frozen with an ancestor cgroup" in stderr, stderr
        assert not (ROOT / path.lstrip("/") / "child").exists()
    finally:
        thaw_and_remove(path)


def userns_bundle(make_bundle, args: list[str], cgroup_mount_rw: bool):
    """A bundle with user (root = host uid 100000) and cgroup namespaces, its own rootfs."""
    bundle = make_bundle(args)
    rootfs = bundle.own_rootfs(bundle.config["root"]["path"])
    subprocess.run(["chown", "-R", "100000:100000", rootfs], check=True)
    linux = bundle.config["linux"]
    linux["namespaces"] += [{"type": "user"}, {"type": "cgroup"}]
    linux["uidMappings"] = [{"hostID": 100000, "containerID": 0, "size": 65536}]
    linux["gidMappings"] = [{"hostID": 100000, "containerID": 0, "size": 65536}]
    if cgroup_mount_rw:
        for mount in bundle.config["mounts"]:
            if mount["type"] == "cgroup":
                mount["options"] = [o for o in mount["options"] if o != "ro"] + ["rw"]
    os.chown(bundle.path, 100000, 100000)
    for directory in bundle.path.parents:  # pytest's temporary directories are 0700
        if directory == Path("/tmp"):
            break
        directory.chmod(directory.stat().st_mode | 0o111)
    return bundle


def test_cgroup_is_delegated_to_the_container_root_user(runtime, make_bundle, cid):
    """With a user namespace, a cgroup namespace and a read-write cgroup mount, ocirun gives
    the cgroup and its delegatable files to the container's root user, who can then make
    sub-cgroups. runc 1.1 does so only with its systemd driver: with cgroupfs the cgroup stays
    the host root's (nobody inside)."""
    script = "stat -c %U /sys/fs/cgroup; mkdir /sys/fs/cgroup/sub && echo made"
    bundle = userns_bundle(make_bundle, ["sh", "-c", script], cgroup_mount_rw=True)
    result = run_to_end(runtime, bundle, cid)
    if runtime.binary == RUNC:
        assert result.stdout.splitlines()[0] == "nobody", result
        return
    assert result.returncode == 0, result
    assert result.stdout.split() == ["root", "made"]


def test_no_delegation_with_a_read_only_cgroup_mount(ocirun, make_bundle, cid):
    bundle = userns_bundle(make_bundle, ["sleep", "100"], cgroup_mount_rw=False)
    run_detached(ocirun, bundle, cid)
    assert cgroup(bundle).stat().st_uid == 0
