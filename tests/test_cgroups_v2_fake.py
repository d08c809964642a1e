"""The cgroup v2 driver against a temporary directory tree shaped like a cgroup2 mount: the
development host is hybrid, so most v2 controllers cannot be seen live there."""

import os
import posix

import pytest

from ocirun.cgroups.hugepages import hugepage_sizes
from ocirun.cgroups.v2 import V2Manager
from ocirun.errors import CgroupError

ALL = "cpuset cpu io memory hugetlb pids rdma misc"
FILES = {  # what the kernel shows in a fresh cgroup, per controller
    "": {
        "cgroup.procs": "",
        "cgroup.subtree_control": "",
        "cgroup.freeze": "0\n",
        "cgroup.events": "populated 0\nfrozen 0\n",
        "cgroup.kill": "",
        "cpu.stat": "usage_usec 0\nuser_usec 0\nsystem_usec 0\n",
    },
    "cpu": {
        "cpu.weight": "100\n",
        "cpu.max": "max 100000\n",
        "cpu.max.burst": "0\n",
        "cpu.idle": "0\n",
    },
    "cpuset": {"cpuset.cpus": "", "cpuset.mems": ""},
    "io": {"io.weight": "default 100\n", "io.max": "", "io.stat": ""},
    "memory": {
        "memory.max": "max\n",
        "memory.low": "0\n",
        "memory.current": "0\n",
        "memory.stat": "",
        "memory.swap.max": "max\n",
        "memory.swap.current": "0\n",
    },
    "pids": {"pids.max": "max\n", "pids.current": "0\n"},
    "rdma": {"rdma.max": ""},
    "hugetlb": {
        f"hugetlb.{size}.{name}": "0\n"
        for size in hugepage_sizes()
        for name in ("max", "rsvd.max", "current", "events")
    },
}


@pytest.fixture
def tree(tmp_path):
    """make(controllers) -> a V2Manager on <tmp>/cgroup, its cgroup /ocirun/c1 created and
    filled with the files of those controllers."""

    def make(controllers: str = ALL, available: str = ALL) -> V2Manager:
        root = tmp_path / "cgroup"
        root.mkdir()
        (root / "cgroup.controllers").write_text(available + "\n")
        (root / "cgroup.subtree_control").write_text("")
        manager = V2Manager(str(root), "/ocirun/c1")
        manager.create()
        (root / "ocirun" / "cgroup.subtree_control").write_text("")
        leaf = root / "ocirun" / "c1"
        (leaf / "cgroup.controllers").write_text(controllers + "\n")
        for controller in ["", *controllers.split()]:
            for name, text in FILES.get(controller, {}).items():
                (leaf / name).write_text(text)
        return manager

    return make


@pytest.fixture
def journal(monkeypatch):
    """Every write(2) to a file of the fake cgroup /ocirun/c1, in order: (file name, text)."""
    entries: list[tuple[str, str]] = []
    real_write = os.write

    def write(fd: int, data: bytes) -> int:
        path = os.readlink(f"/proc/self/fd/{fd}")
        if "/cgroup/ocirun/c1/" in path:
            entries.append((os.path.basename(path), data.decode()))
        return real_write(fd, data)

    monkeypatch.setattr(os, "write", write)
    monkeypatch.setattr(posix, "write", write)  # cgroups.common writes through posix
    return entries


def content(manager: V2Manager, name: str) -> str:
    with open(f"{manager.dir}/{name}") as f:
        return f.read()


def test_create_enables_controllers_down_the_path(tree, tmp_path):
    manager = tree()
    assert manager.dir == f"{tmp_path}/cgroup/ocirun/c1"
    assert manager.path == "/ocirun/c1;parents=1"  # /ocirun was made too
    enabled = (tmp_path / "cgroup" / "cgroup.subtree_control").read_text()
    assert enabled == "+cpuset +cpu +io +memory +hugetlb +pids +rdma +misc"
    assert manager.mount_sources() == [("", manager.dir, "cgroup2")]


def test_entry_moves_a_process(tree):
    manager = tree()
    entry = manager.open_entry()
    try:
        assert entry.tasks == []
        entry.move_into_cgroup2(4242)
    finally:
        entry.close()
    assert content(manager, "cgroup.procs") == "4242"


def test_cpu(tree):
    manager = tree()
    manager.update(
        {"cpu": {"shares": 1024, "quota": 50000, "period": 100000, "burst": 1000, "idle": 0}}
    )
    assert content(manager, "cpu.weight") == "39"
    assert content(manager, "cpu.max") == "50000 100000"
    assert content(manager, "cpu.max.burst") == "1000"
    assert content(manager, "cpu.idle") == "0"


def test_cpu_update_keeps_the_other_half_of_cpu_max(tree):
    manager = tree()
    manager.update({"cpu": {"quota": 20000}})
    assert content(manager, "cpu.max") == "20000 100000"
    manager.update({"cpu": {"period": 50000}})
    assert content(manager, "cpu.max") == "20000 50000"
    manager.update({"cpu": {"quota": -1}})
    assert content(manager, "cpu.max") == "max 50000"


def test_cpu_realtime_is_ignored_with_a_warning(tree, capfd):
    tree().update({"cpu": {"realtimeRuntime": 1000}})  # as runc 1.1, which ignores it silently
    assert "no realtime limits, ignored" in capfd.readouterr().err


def test_cpuset(tree):
    manager = tree()
    manager.update({"cpu": {"cpus": "0-1", "mems": "0"}})
    assert content(manager, "cpuset.cpus") == "0-1"
    assert content(manager, "cpuset.mems") == "0"


def test_memory(tree):
    manager = tree()
    manager.update({"memory": {"limit": 64 << 20, "swap": 96 << 20, "reservation": 32 << 20}})
    assert content(manager, "memory.max") == str(64 << 20)
    assert content(manager, "memory.swap.max") == str(32 << 20)
    assert content(manager, "memory.low") == str(32 << 20)
    manager.update({"memory": {"limit": 64 << 20, "swap": 64 << 20}})
    assert content(manager, "memory.swap.max") == "0"
    manager.update({"memory": {"limit": -1}})
    assert content(manager, "memory.max") == "max"
    assert content(manager, "memory.swap.max") == "max"


def test_memory_v1_only_settings_warn(tree, capfd):
    tree().update({"memory": {"swappiness": 10, "kernel": -1, "disableOOMKiller": True}})
    assert "memory.kernel, memory.swappiness, memory.disableOOMKiller" in capfd.readouterr().err


def test_memory_check_before_update(tree):
    manager = tree()
    with open(f"{manager.dir}/memory.current", "w") as f:
        f.write("1000000\n")
    with pytest.raises(CgroupError, match="below the current usage 1000000"):
        manager.update({"memory": {"limit": 500000, "checkBeforeUpdate": True}})
    manager.update({"memory": {"limit": 500000}})  # without the check the kernel decides
    assert content(manager, "memory.max") == "500000"


def test_pids(tree):
    manager = tree()
    manager.update({"pids": {"limit": 0}})
    assert content(manager, "pids.max") == "0"
    manager.update({"pids": {"limit": -1}})
    assert content(manager, "pids.max") == "max"


def test_io_without_bfq(tree, journal):
    manager = tree()
    manager.update(
        {
            "blockIO": {
                "weight": 500,
                "throttleReadBpsDevice": [{"major": 8, "minor": 0, "rate": 600}],
                "throttleWriteIOPSDevice": [{"major": 8, "minor": 16, "rate": 300}],
            }
        }
    )
    assert journal == [
        ("io.weight", "4950"),
        ("io.max", "8:0 rbps=600"),
        ("io.max", "8:16 wiops=300"),
    ]


def test_io_with_bfq_per_device_weights(tree, journal):
    manager = tree()
    with open(f"{manager.dir}/io.bfq.weight", "w") as f:
        f.write("default 100\n")
    manager.update(
        {"blockIO": {"weight": 500, "weightDevice": [{"major": 8, "minor": 0, "weight": 300}]}}
    )
    assert journal == [("io.bfq.weight", "500"), ("io.bfq.weight", "8:0 300")]


@pytest.mark.skipif("2MB" not in hugepage_sizes(), reason="no 2MB huge pages on this host")
def test_hugetlb(tree):
    manager = tree()
    manager.update({"hugepageLimits": [{"pageSize": "2MB", "limit": 4 << 20}]})
    assert content(manager, "hugetlb.2MB.max") == str(4 << 20)
    assert content(manager, "hugetlb.2MB.rsvd.max") == str(4 << 20)
    with pytest.raises(CgroupError, match="page size 3MB is not supported"):
        manager.update({"hugepageLimits": [{"pageSize": "3MB", "limit": 1}]})


def test_rdma(tree):
    manager = tree()
    manager.update({"rdma": {"mlx5_1": {"hcaHandles": 3, "hcaObjects": 10000}}})
    assert content(manager, "rdma.max") == "mlx5_1 hca_handle=3 hca_object=10000"


def test_unified_is_written_last_line_by_line(tree, journal):
    manager = tree()
    manager.update(
        {
            "unified": {"cpu.weight": "77", "io.max": "8:0 rbps=1\n8:16 wbps=2"},
            "cpu": {"shares": 1024},
        }
    )
    assert journal == [
        ("cpu.weight", "39"),
        ("cpu.weight", "77"),
        ("io.max", "8:0 rbps=1"),
        ("io.max", "8:16 wbps=2"),
    ]


@pytest.mark.parametrize("key", ["cpu/../x", "nodot"])
def test_unified_bad_keys(tree, key):
    with pytest.raises(CgroupError, match="CONTROLLER.PARAMETER"):
        tree().update({"unified": {key: "1"}})


def test_unified_controller_not_available(tree):
    with pytest.raises(CgroupError, match="the misc controller is not available"):
        tree(controllers="cpu memory", available="cpu memory").update(
            {"unified": {"misc.max": "x"}}
        )


def test_missing_controller_is_an_error_when_asked_and_a_warning_otherwise(tree, capfd):
    manager = tree(controllers="cpu memory pids", available="cpu memory pids")
    with pytest.raises(CgroupError, match="blockIO: the io controller is not available"):
        manager.update({"blockIO": {"weight": 100}})
    manager.update({"blockIO": {"weightDevice": []}})
    assert "blockIO ignored: no io controller" in capfd.readouterr().err


def test_network_has_no_v2_controller(tree):
    with pytest.raises(CgroupError, match="net_cls"):
        tree().update({"network": {"classID": 1}})


def test_freeze_waits_for_the_kernel(tree):
    manager = tree()
    with open(f"{manager.dir}/cgroup.events", "w") as f:
        f.write("populated 1\nfrozen 1\n")
    manager.freeze()
    assert content(manager, "cgroup.freeze") == "1" and manager.is_frozen()
    manager.thaw()
    assert content(manager, "cgroup.freeze") == "0" and not manager.is_frozen()


def test_kill_uses_cgroup_kill(tree):
    manager = tree()
    manager.kill()
    assert content(manager, "cgroup.kill") == "1"


def test_pids_include_sub_cgroups(tree):
    manager = tree()
    with open(f"{manager.dir}/cgroup.procs", "w") as f:
        f.write("13\n12\n")
    os.mkdir(f"{manager.dir}/sub")
    with open(f"{manager.dir}/sub/cgroup.procs", "w") as f:
        f.write("14\n")
    assert manager.pids() == [12, 13, 14]


def test_stats(tree):
    manager = tree(controllers="cpu memory pids io")
    files = {
        "cpu.stat": "usage_usec 1500\nuser_usec 1000\nsystem_usec 500\n"
        "nr_periods 10\nnr_throttled 2\nthrottled_usec 30\n",
        "memory.stat": "anon 4096\nfile 8192\n",
        "memory.current": "12288\n",
        "memory.max": "1048576\n",
        "memory.peak": "20000\n",
        "memory.events": "low 0\nhigh 0\nmax 3\noom 1\noom_kill 1\n",
        "memory.swap.current": "100\n",
        "memory.swap.max": "max\n",
        "pids.current": "2\n",
        "pids.max": "max\n",
        "io.stat": "8:0 rbytes=4096 wbytes=0 rios=1 wios=0 dbytes=0 dios=0\n",
    }
    for name, text in files.items():
        with open(f"{manager.dir}/{name}", "w") as f:
            f.write(text)
    data = manager.stats()
    assert data["cpu"] == {
        "usage": {"total": 1500000, "kernel": 500000, "user": 1000000},
        "throttling": {"periods": 10, "throttledPeriods": 2, "throttledTime": 30000},
    }
    assert data["memory"]["cache"] == 8192
    assert data["memory"]["usage"] == {"limit": 1048576, "usage": 12288, "max": 20000, "failcnt": 3}
    assert data["memory"]["swap"] == {"limit": (1 << 64) - 1, "usage": 12388, "failcnt": 0}
    assert data["memory"]["raw"] == {"anon": 4096, "file": 8192}
    assert data["pids"] == {"current": 2}
    assert data["blkio"] == {
        "ioServiceBytesRecursive": [
            {"major": 8, "op": "Read", "value": 4096},
            {"major": 8, "op": "Write"},
        ],
        "ioServicedRecursive": [
            {"major": 8, "op": "Read", "value": 1},
            {"major": 8, "op": "Write"},
        ],
    }
    assert set(data) == {
        "cpu",
        "cpuset",
        "memory",
        "pids",
        "blkio",
        "hugetlb",
        "intel_rdt",
        "network_interfaces",
    }


def test_oom_events(tree):
    manager = tree(controllers="memory")
    events = f"{manager.dir}/memory.events"
    with open(events, "w") as f:
        f.write("low 0\nhigh 0\nmax 2\noom 1\noom_kill 1\n")
    with open(f"{manager.dir}/cgroup.events", "w") as f:
        f.write("populated 1\nfrozen 0\n")
    notifier = manager.oom_notifier()
    try:
        assert notifier.poll_events == 2  # POLLPRI
        assert notifier.read() == 0
        with open(events, "w") as f:
            f.write("low 0\nhigh 0\nmax 5\noom 3\noom_kill 3\n")
        assert notifier.read() == 2
        with open(f"{manager.dir}/cgroup.events", "w") as f:
            f.write("populated 0\nfrozen 0\n")
        assert notifier.read() is None
    finally:
        notifier.close()
