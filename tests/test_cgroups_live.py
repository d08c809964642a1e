"""ocirun.cgroups on this machine's real hierarchies, with real processes in the cgroups.

Every cgroup lives below /ocirun-pytest-<pid> (v1 hierarchies and the cgroup2 one), and the
fixtures kill what they started and remove what they created, also when a test fails.
"""

import os
import select
import subprocess
import sys
import time

import pytest

from ocirun import cgroups
from ocirun.cgroups import detect
from ocirun.cgroups.hugepages import hugepage_sizes
from ocirun.cgroups.tree import remove_tree
from ocirun.cgroups.v2 import V2Manager, bpf
from ocirun.errors import CgroupError

pytestmark = pytest.mark.container

PREFIX = f"/ocirun-pytest-{os.getpid()}"
HOST = detect.host()
V1 = HOST.mode in ("hybrid", "legacy") and os.geteuid() == 0
needs_v1 = pytest.mark.skipif(not V1, reason="needs root on a host with cgroup v1 controllers")
needs_cgroup2 = pytest.mark.skipif(
    HOST.v2 is None or os.geteuid() != 0, reason="needs root and a cgroup2 hierarchy"
)

# A child that waits for a byte on stdin before running its code, so that it is in the
# cgroup before it does anything.
GATED = "import os, sys\nsys.stdin.buffer.read(1)\n"


class Sandbox:
    """The processes and cgroups of one test, cleaned up by the fixture."""

    def __init__(self):
        self.processes: list[subprocess.Popen] = []
        self.managers: list[cgroups.Manager] = []

    def manager(self, name: str, resources: dict | None = None) -> cgroups.Manager:
        manager = cgroups.manager_for(f"{PREFIX}/{name}", name)
        self.managers.append(manager)
        manager.create()
        if resources is not None:
            manager.apply(resources)
        return manager

    def v2_manager(self, name: str) -> V2Manager:
        manager = V2Manager(
            HOST.v2.mountpoint, f"{PREFIX}/{name}", enable_all=HOST.mode == "unified"
        )
        self.managers.append(manager)
        manager.create()
        return manager

    def spawn(self, manager: cgroups.Manager, code: str) -> subprocess.Popen:
        """A python child running code once it is in the cgroup."""
        process = subprocess.Popen(
            [sys.executable, "-c", GATED + code],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        self.processes.append(process)
        move(manager, process.pid)
        process.stdin.write(b"x")
        process.stdin.flush()
        return process

    def cleanup(self) -> None:
        for process in self.processes:
            process.kill()
            process.wait()
        for manager in self.managers:
            for _ in range(50):  # the forks of a child are not our children: wait them out
                manager.kill()
                if not manager.pids():
                    break
                time.sleep(0.02)
            manager.destroy()
        hierarchies = [*HOST.v1, HOST.v2] if HOST.v2 else HOST.v1
        for hierarchy in hierarchies:
            remove_tree(hierarchy.mountpoint + PREFIX)  # with the parents the tests made


@pytest.fixture
def sandbox():
    box = Sandbox()
    try:
        yield box
    finally:
        box.cleanup()


# a process in the cgroup tries both devices: default rules allow /dev/null, not /dev/kmsg
OPEN_NULL_AND_KMSG = (
    "for path in ('/dev/null', '/dev/kmsg'):\n"
    "    try:\n"
    "        os.close(os.open(path, os.O_RDONLY | os.O_NONBLOCK))\n"
    "        print(path, 'ok')\n"
    "    except OSError as e:\n"
    "        print(path, e.strerror)\n"
)


def move(manager: cgroups.Manager, pid: int) -> None:
    """Put a running single-threaded process in the cgroup of every hierarchy (the slow way:
    ocirun's own processes join through Entry.fork, Entry.join_v1 and Entry.join_memory)."""
    entry = manager.open_entry()
    try:
        for _, fd in [*entry.tasks, *entry.memory_tasks]:
            os.write(fd, str(pid).encode())
        if entry.cgroup2_fd >= 0:
            entry.move_into_cgroup2(pid)
    finally:
        entry.close()


def utime(pid: int) -> int:
    with open(f"/proc/{pid}/stat") as f:
        return int(f.read().rpartition(")")[2].split()[11])


def assert_still_while_frozen_then_thaw(manager: cgroups.Manager, spinner) -> int:
    """A frozen cgroup: the manager says so and the spinner gets no CPU; then thaw it and
    return the spinner's CPU time while it was frozen."""
    assert manager.is_frozen()
    before = utime(spinner.pid)
    time.sleep(0.3)
    assert utime(spinner.pid) == before
    manager.thaw()
    assert not manager.is_frozen()
    return before


def wait_output(process: subprocess.Popen, timeout: float = 30) -> str:
    out, _ = process.communicate(timeout=timeout)
    return out.decode()


@needs_v1
def test_memory_limit_holds(sandbox):
    limit = 32 << 20
    manager = sandbox.manager("mem", {"memory": {"limit": limit, "swap": limit}})
    hog = sandbox.spawn(manager, "data = b'x' * (100 << 20)\nprint('survived')")
    assert wait_output(hog) == ""
    assert hog.returncode == -9  # the OOM killer
    usage = manager.stats()["memory"]["usage"]
    assert usage["limit"] == usage["max"] == limit  # the peak reached the limit, no further
    memory = next(path for name, path, _ in manager.mount_sources() if name == "memory")
    with open(f"{memory}/memory.oom_control") as f:
        assert "oom_kill 1" in f.read()


@needs_v1
def test_memory_update_below_usage_is_refused(sandbox):
    manager = sandbox.manager("memup", {"memory": {"limit": 64 << 20}})
    holder = sandbox.spawn(
        manager, "data = b'x' * (20 << 20)\nprint('ok', flush=True)\nsys.stdin.read()"
    )
    assert holder.stdout.readline() == b"ok\n"
    manager.update({"memory": {"limit": 48 << 20, "swap": 48 << 20}})
    assert manager.stats()["memory"]["usage"]["limit"] == 48 << 20
    with pytest.raises(CgroupError, match="unable to set memory limit to 1048576"):
        manager.update({"memory": {"limit": 1 << 20}})


@needs_v1
def test_pids_limit_holds(sandbox):
    manager = sandbox.manager("pids", {"pids": {"limit": 10}})
    forker = sandbox.spawn(
        manager,
        "import time\nforks = 0\n"
        "for _ in range(40):\n"
        "    try:\n"
        "        if os.fork() == 0:\n"
        "            time.sleep(30)\n"
        "            os._exit(0)\n"
        "        forks += 1\n"
        "    except BlockingIOError:\n"
        "        pass\n"
        "print(forks, flush=True)\nsys.stdin.read()",
    )
    forks = int(forker.stdout.readline())
    assert 1 <= forks <= 9
    assert len(manager.pids()) == forks + 1 <= 10
    assert manager.stats()["pids"] == {"current": forks + 1, "limit": 10}


@needs_v1
def test_freeze_and_thaw(sandbox):
    manager = sandbox.manager("freeze", {})
    spinner = sandbox.spawn(manager, "while True: pass")
    time.sleep(0.1)
    manager.freeze()
    before = assert_still_while_frozen_then_thaw(manager, spinner)
    time.sleep(0.3)
    assert utime(spinner.pid) > before


@needs_v1
def test_pids_and_stats(sandbox):
    manager = sandbox.manager("stats", {"cpu": {"shares": 512}, "pids": {"limit": 100}})
    worker = sandbox.spawn(
        manager,
        "import subprocess\nchild = subprocess.Popen(['sleep', '30'])\n"
        "data = b'x' * (8 << 20)\nx = sum(range(3_000_000))\n"
        "print(child.pid, flush=True)\nsys.stdin.read()",
    )
    child = int(worker.stdout.readline())
    assert manager.pids() == sorted([worker.pid, child])
    data = manager.stats()
    assert data["cpu"]["usage"]["total"] > 0
    assert data["cpu"]["usage"]["user"] > 0
    assert data["memory"]["usage"]["usage"] > 8 << 20
    assert data["memory"]["raw"]["total_rss"] > 0
    assert data["pids"] == {"current": 2, "limit": 100}
    assert data["cpuset"]["cpus"] and "cpu_exclusive" in data["cpuset"]
    assert data["intel_rdt"] == {} and data["network_interfaces"] is None


@needs_v1
def test_devices_deny_by_default(sandbox):
    manager = sandbox.manager("dev", {"devices": [{"allow": False, "access": "rwm"}]})
    probe = sandbox.spawn(manager, OPEN_NULL_AND_KMSG)
    assert wait_output(probe) == "/dev/null ok\n/dev/kmsg Operation not permitted\n"


@needs_v1
def test_cpu_and_cpuset(sandbox):
    manager = sandbox.manager(
        "cpu/nested", {"cpu": {"shares": 512, "quota": 20000, "period": 100000}}
    )
    directories = dict((name, path) for name, path, _ in manager.mount_sources())
    cpuset = next(path for name, path in directories.items() if "cpuset" in name.split(","))
    with open(f"{cpuset}/cpuset.cpus") as f:
        assert f.read().strip()  # copied down from the parent, so that processes can join
    manager.update({"cpu": {"cpus": "0", "quota": 50000}})
    with open(f"{cpuset}/cpuset.cpus") as f:
        assert f.read().strip() == "0"
    cpu = next(path for name, path in directories.items() if "cpu" in name.split(","))
    with open(f"{cpu}/cpu.cfs_quota_us") as f:
        assert f.read().strip() == "50000"


@needs_v1
def test_destroy_leaves_nothing_create_made(sandbox):
    manager = sandbox.manager("gone/deeper", {"pids": {"limit": 20}})
    assert manager.path == f"{PREFIX}/gone/deeper;parents=2"  # the prefix and gone were made too
    sandbox.spawn(manager, "sys.stdin.read()")
    directories = [path for _, path, _ in manager.mount_sources()]
    assert all(os.path.isdir(path) for path in directories)
    manager.kill()
    cgroups.open_existing(manager.path).destroy()
    assert not any(os.path.exists(path.removesuffix("/gone/deeper")) for path in directories)
    manager.destroy()  # again: missing directories are fine


@needs_v1
def test_destroy_keeps_parents_still_in_use(sandbox):
    first = sandbox.manager("shared/first", {})
    second = sandbox.manager("shared/second", {})
    assert first.parents == 2 and second.parents == 0
    first.destroy()
    assert all(os.path.isdir(path) for _, path, _ in second.mount_sources())


@needs_v1
def test_oom_notifications(sandbox):
    limit = 32 << 20
    manager = sandbox.manager("oom", {"memory": {"limit": limit, "swap": limit}})
    notifier = manager.oom_notifier()
    try:
        poller = select.poll()
        poller.register(notifier, notifier.poll_events)
        assert poller.poll(0) == []
        hog = sandbox.spawn(manager, "data = b'x' * (100 << 20)")
        hog.wait(timeout=30)
        assert poller.poll(5000) and notifier.read() == 1
        manager.destroy()
        assert poller.poll(5000) and notifier.read() is None
    finally:
        notifier.close()


@needs_v1
def test_open_existing_finds_the_same_cgroup(sandbox):
    manager = sandbox.manager("again", {})
    sleeper = sandbox.spawn(manager, "sys.stdin.read()")
    assert cgroups.open_existing(manager.path).pids() == [sleeper.pid]


@needs_v1
def test_hugetlb_through_cgroup2_on_a_hybrid_host(sandbox):
    if HOST.mode != "hybrid" or "2MB" not in hugepage_sizes():
        pytest.skip("needs a hybrid host with 2MB huge pages")
    manager = sandbox.manager("huge", {"hugepageLimits": [{"pageSize": "2MB", "limit": 2 << 20}]})
    unified = dict((name, path) for name, path, _ in manager.mount_sources())[HOST.v2.name]
    with open(f"{unified}/hugetlb.2MB.max") as f:
        assert f.read().strip() == str(2 << 20)
    assert manager.stats()["hugetlb"]["2MB"] == {"failcnt": 0}


@needs_v1
def test_entry_forks_into_every_hierarchy_without_moving(sandbox):
    """The way in of an init: born in the cgroup2 cgroup, then "0" into each v1 `tasks`."""
    manager = sandbox.manager("entry")
    entry = manager.open_entry()
    read_end, write_end = os.pipe()
    try:
        pid, joined = entry.fork()
        if pid == 0:
            try:
                entry.join_v1()
                entry.join_memory()
                with open("/proc/self/cgroup", "rb") as f:
                    os.write(write_end, f.read())
            finally:
                os._exit(0)
    finally:
        entry.close()
        os.close(write_end)
    with os.fdopen(read_end, "rb") as f:
        lines = f.read().decode().splitlines()
    os.waitpid(pid, 0)
    assert joined  # born in the cgroup2 cgroup (clone3): the parent has nothing to move
    assert len(lines) == len(HOST.v1) + (1 if HOST.v2 else 0)
    assert all(line.endswith(f":{PREFIX}/entry") for line in lines), lines
    assert manager.pids() == []  # the child is gone


@needs_cgroup2
def test_cgroup2_join_freeze_kill(sandbox):
    manager = sandbox.v2_manager("v2")
    spinner = sandbox.spawn(manager, "while True: pass")
    assert manager.pids() == [spinner.pid]
    manager.freeze()
    with open(f"{manager.dir}/cgroup.events") as f:
        assert "frozen 1" in f.read()
    assert_still_while_frozen_then_thaw(manager, spinner)
    manager.kill()  # cgroup.kill
    assert spinner.wait(timeout=10) == -9


@needs_cgroup2
def test_cgroup2_device_filter(sandbox):
    manager = sandbox.v2_manager("bpf")
    manager.apply({"devices": [{"allow": False, "access": "rwm"}]})
    manager.apply({"devices": [{"allow": True, "access": "rwm"}]})  # replaces the first program
    dirfd = os.open(manager.dir, os.O_RDONLY | os.O_DIRECTORY)
    try:
        assert len(bpf._attached(dirfd)) == 1
    finally:
        os.close(dirfd)
    manager.apply({"devices": [{"allow": False, "access": "rwm"}]})
    probe = sandbox.spawn(manager, OPEN_NULL_AND_KMSG)
    assert wait_output(probe) == "/dev/null ok\n/dev/kmsg Operation not permitted\n"


@needs_cgroup2
def test_cgroup2_hugetlb(sandbox):
    if "2MB" not in hugepage_sizes():
        pytest.skip("no 2MB huge pages")
    manager = sandbox.v2_manager("hugetlb")
    manager.update({"hugepageLimits": [{"pageSize": "2MB", "limit": 4 << 20}]})
    with open(f"{manager.dir}/hugetlb.2MB.max") as f:
        assert f.read().strip() == str(4 << 20)
