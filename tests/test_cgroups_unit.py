"""ocirun.cgroups without touching any cgroup: path rules, host detection, conversions,
device rules and the eBPF device program (run through a small interpreter)."""

import pytest

from ocirun import cgroups
from ocirun.cgroups import convert, detect
from ocirun.cgroups.devices import DEFAULT_RULES, WILDCARD, DeviceRules, line
from ocirun.cgroups.v2 import devices as v2_devices
from ocirun.errors import CgroupError

HYBRID_MOUNTINFO = """\
23 1 0:21 / /sys rw,nosuid,nodev,noexec,relatime - sysfs sysfs rw
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
33 31 0:30 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct
34 31 0:31 / /sys/fs/cgroup/cpuset rw,relatime - cgroup cgroup rw,cpuset
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
36 31 0:33 / /sys/fs/cgroup/devices rw,relatime - cgroup cgroup rw,devices
37 31 0:34 / /sys/fs/cgroup/freezer rw,relatime - cgroup cgroup rw,freezer
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
"""
HYBRID_CGROUP = """\
9:name=systemd:/
6:freezer:/
5:devices:/
4:memory:/process_api/a0
3:cpuset:/
2:cpuacct:/
1:cpu:/
0::/
"""
UNIFIED_MOUNTINFO = """\
25 1 0:23 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:4 - cgroup2 cgroup2 rw,nsdelegate
"""
UNIFIED_CGROUP = "0::/user.slice/user-1000.slice/session-1.scope\n"
LEGACY_MOUNTINFO = """\
31 23 0:28 / /sys/fs/cgroup ro,nosuid - tmpfs tmpfs ro,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid - cgroup cgroup rw,cpu,cpuacct
33 31 0:30 / /sys/fs/cgroup/memory rw,nosuid - cgroup cgroup rw,memory
34 31 0:31 / /sys/fs/cgroup/systemd rw,nosuid - cgroup cgroup rw,xattr,name=systemd
35 31 0:29 / /mnt/cpu\\040again rw,nosuid - cgroup cgroup rw,cpu,cpuacct
"""
LEGACY_CGROUP = "3:name=systemd:/x\n2:memory:/x\n1:cpu,cpuacct:/x\n"
# a container's view: the hierarchies' mounted roots are the container's own cgroup
CONTAINER_MOUNTINFO = """\
40 30 0:29 /docker/abc /sys/fs/cgroup/memory ro - cgroup cgroup rw,memory
41 30 0:30 /docker/abc /sys/fs/cgroup/pids ro - cgroup cgroup rw,pids
"""
CONTAINER_CGROUP = "2:memory:/docker/abc\n1:pids:/docker/abc\n"


@pytest.fixture
def fake_host(tmp_path, monkeypatch):
    """Point detection at a mountinfo and a /proc/self/cgroup written by the test."""

    def use(mountinfo: str, own: str) -> None:
        (tmp_path / "mountinfo").write_text(mountinfo)
        (tmp_path / "cgroup").write_text(own)
        real_host, real_own = detect.host, detect.own_cgroups
        monkeypatch.setattr(detect, "host", lambda: real_host(str(tmp_path / "mountinfo")))
        monkeypatch.setattr(detect, "own_cgroups", lambda: real_own(str(tmp_path / "cgroup")))

    return use


def dirs(manager: cgroups.Manager) -> dict[str, str]:
    return {name: host_dir for name, host_dir, _ in manager.mount_sources()}


# --- detection ---------------------------------------------------------------------------


def test_detects_hybrid(tmp_path):
    (tmp_path / "m").write_text(HYBRID_MOUNTINFO)
    host = detect.host(str(tmp_path / "m"))
    assert host.mode == "hybrid"
    assert [h.name for h in host.v1] == [
        "cpu",
        "cpuacct",
        "cpuset",
        "memory",
        "devices",
        "freezer",
        "systemd",
    ]
    assert host.v1[-1].controllers == {"name=systemd"}
    assert host.v2.mountpoint == "/sys/fs/cgroup/unified"


def test_detects_unified(tmp_path):
    (tmp_path / "m").write_text(UNIFIED_MOUNTINFO)
    host = detect.host(str(tmp_path / "m"))
    assert host.mode == "unified" and host.v1 == [] and host.v2.mountpoint == "/sys/fs/cgroup"


def test_detects_legacy_first_mount_of_each_hierarchy(tmp_path):
    (tmp_path / "m").write_text(LEGACY_MOUNTINFO)
    host = detect.host(str(tmp_path / "m"))
    assert host.mode == "legacy" and host.v2 is None
    assert [(h.name, sorted(h.controllers)) for h in host.v1] == [
        ("cpu,cpuacct", ["cpu", "cpuacct"]),
        ("memory", ["memory"]),
        ("systemd", ["name=systemd"]),
    ]


def test_no_cgroup_mounted(tmp_path):
    (tmp_path / "m").write_text("23 1 0:21 / /sys rw - sysfs sysfs rw\n")
    with pytest.raises(CgroupError, match="no cgroup filesystem"):
        detect.host(str(tmp_path / "m"))


def test_mountinfo_escapes(tmp_path):
    (tmp_path / "m").write_text("35 31 0:29 / /mnt/a\\040b rw - cgroup2 cgroup2 rw\n")
    assert detect.host(str(tmp_path / "m")).v2.mountpoint == "/mnt/a b"


# --- path rules --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "given, cleaned",
    [
        ("/a/b", "/a/b"),
        ("//a//b/", "/a/b"),
        ("/a/../../b", "/b"),
        ("a/./b", "a/b"),
        ("../../a", "a"),
        ("a/../..", "."),
        ("", ""),
    ],
)
def test_clean_path_like_runc(given, cleaned):
    assert cgroups.clean_path(given) == cleaned


def test_absolute_path_in_every_hierarchy(fake_host):
    fake_host(HYBRID_MOUNTINFO, HYBRID_CGROUP)
    manager = cgroups.manager_for("/ocirun/abc", "abc")
    assert manager.path == "/ocirun/abc"
    assert dirs(manager) == {
        name: f"/sys/fs/cgroup/{name}/ocirun/abc"
        for name in (
            "cpu",
            "cpuacct",
            "cpuset",
            "memory",
            "devices",
            "freezer",
            "systemd",
            "unified",
        )
    }
    assert manager.mount_sources()[-1][2] == "cgroup2"
    assert {fstype for _, _, fstype in manager.mount_sources()[:-1]} == {"cgroup"}


def test_no_path_is_the_id_below_own_cgroups(fake_host):
    fake_host(HYBRID_MOUNTINFO, HYBRID_CGROUP)
    manager = cgroups.manager_for(None, "abc")
    assert manager.path == "/abc;memory=/process_api/a0/abc"
    assert dirs(manager)["memory"] == "/sys/fs/cgroup/memory/process_api/a0/abc"
    assert dirs(manager)["cpu"] == "/sys/fs/cgroup/cpu/abc"
    assert dirs(manager)["unified"] == "/sys/fs/cgroup/unified/abc"
    assert dirs(cgroups.open_existing(manager.path)) == dirs(manager)


def test_relative_path_on_unified_host_goes_below_the_parent(fake_host):
    fake_host(UNIFIED_MOUNTINFO, UNIFIED_CGROUP)
    manager = cgroups.manager_for("ctr/../pod/abc", "abc")
    assert manager.path == "/user.slice/user-1000.slice/pod/abc"
    assert manager.mount_sources() == [
        ("", "/sys/fs/cgroup/user.slice/user-1000.slice/pod/abc", "cgroup2")
    ]
    assert cgroups.open_existing(manager.path).mount_sources() == manager.mount_sources()


def test_relative_path_in_a_container_view(fake_host):
    fake_host(CONTAINER_MOUNTINFO, CONTAINER_CGROUP)
    manager = cgroups.manager_for("inner", "inner")
    assert manager.path == "/inner"
    assert dirs(manager) == {
        "memory": "/sys/fs/cgroup/memory/inner",
        "pids": "/sys/fs/cgroup/pids/inner",
    }


def test_legacy_comounted_hierarchy(fake_host):
    fake_host(LEGACY_MOUNTINFO, LEGACY_CGROUP)
    manager = cgroups.manager_for("c", "c")
    assert manager.path == "/x/c"
    assert dirs(manager)["cpu,cpuacct"] == "/sys/fs/cgroup/cpu,cpuacct/x/c"


def test_systemd_form_is_refused(fake_host):
    fake_host(HYBRID_MOUNTINFO, HYBRID_CGROUP)
    with pytest.raises(CgroupError, match="needs --systemd-cgroup"):
        cgroups.manager_for("system.slice:docker:abc", "abc")


@pytest.mark.parametrize("path", ["/", "//", "..", "a/.."])
def test_root_or_own_cgroup_is_refused(fake_host, path):
    fake_host(HYBRID_MOUNTINFO, HYBRID_CGROUP)
    with pytest.raises(CgroupError, match="hierarchy root"):
        cgroups.manager_for(path, "abc")


# --- conversions (runc 1.1's formulas) ---------------------------------------------------


@pytest.mark.parametrize("shares, weight", [(0, 0), (2, 1), (1024, 39), (262144, 10000)])
def test_cpu_shares_to_weight(shares, weight):
    assert convert.cpu_shares_to_weight(shares) == weight


@pytest.mark.parametrize("blkio, io", [(0, 0), (10, 1), (500, 4950), (1000, 10000)])
def test_blkio_weight_to_io_weight(blkio, io):
    assert convert.blkio_weight_to_io_weight(blkio) == io


@pytest.mark.parametrize(
    "swap, memory, swap_max",
    [(0, 0, 0), (0, -1, -1), (-1, 100, -1), (0, 100, 0), (150, 100, 50), (100, 100, 0)],
)
def test_memory_swap_to_v2(swap, memory, swap_max):
    assert convert.memory_swap_to_v2(swap, memory) == swap_max


@pytest.mark.parametrize("swap, memory", [(100, 0), (50, 100), (100, -1)])
def test_memory_swap_to_v2_refuses(swap, memory):
    with pytest.raises(CgroupError):
        convert.memory_swap_to_v2(swap, memory)


# --- device rules ------------------------------------------------------------------------


def test_deny_all_then_allow_list():
    rules = DeviceRules(
        [
            {"allow": False, "access": "rwm"},
            {"allow": True, "type": "c", "major": 1, "minor": 3, "access": "rw"},
            {"allow": True, "type": "c", "major": 1, "minor": 3, "access": "m"},
            {"allow": True, "type": "b", "major": 8, "access": "r"},
        ]
    )
    assert not rules.default_allow
    assert sorted(line(k, b) for k, b in rules.exceptions.items()) == ["b 8:* r", "c 1:3 rwm"]


def test_no_rules_is_deny_all_like_runc():
    assert DeviceRules([]).default_allow is False
    defaults = DeviceRules(DEFAULT_RULES)
    assert ("c", 1, 3) in defaults.exceptions and ("c", WILDCARD, WILDCARD) in defaults.exceptions


def test_allow_all_then_deny_some():
    rules = DeviceRules(
        [
            {"allow": False},
            {"allow": True, "type": "c", "major": 1, "minor": 5},
            {"allow": True, "type": "a"},
            {"allow": False, "type": "c", "major": 1, "minor": 11, "access": "r"},
        ]
    )
    assert rules.default_allow and rules.exceptions == {("c", 1, 11): 1}


def test_deny_removes_an_allowed_exception():
    rules = DeviceRules(
        [
            {"allow": False},
            {"allow": True, "type": "c", "major": 1, "minor": 3, "access": "rwm"},
            {"allow": False, "type": "c", "major": 1, "minor": 3, "access": "w"},
        ]
    )
    assert [line(k, b) for k, b in rules.exceptions.items()] == ["c 1:3 rm"]


def test_cannot_punch_a_hole_in_a_wildcard():
    with pytest.raises(CgroupError, match="punch a hole"):
        DeviceRules(
            [
                {"allow": False},
                {"allow": True, "type": "c", "major": 136, "access": "rwm"},
                {"allow": False, "type": "c", "major": 136, "minor": 0, "access": "r"},
            ]
        )


def test_invalid_rule_type():
    with pytest.raises(CgroupError, match="invalid rule"):
        DeviceRules([{"allow": True, "type": "x"}])


def test_unknown_access_letters_are_ignored_with_a_warning(capfd):
    """As runc 1.1 does (its suite sends "rwa"): only r, w and m count."""
    rules = DeviceRules([{"allow": True, "type": "c", "major": 1, "minor": 11, "access": "rwa"}])
    assert rules.exceptions == {("c", 1, 11): 1 | 2}
    assert "access 'a' ignored" in capfd.readouterr().err


# --- the eBPF device program -------------------------------------------------------------

BLOCK, CHAR = 1, 2
MKNOD, READ, WRITE = 1, 2, 4


def run_program(code: bytes, kind: int, access: int, major: int, minor: int) -> int:
    """Interpret the few eBPF instructions the generator uses, on a bpf_cgroup_dev_ctx."""
    ctx = [kind | access << 16, major, minor]
    regs = [0] * 11
    pc = 0
    for _ in range(1000):
        op, regs_byte = code[8 * pc], code[8 * pc + 1]
        dst, src = regs_byte & 0xF, regs_byte >> 4
        off = int.from_bytes(code[8 * pc + 2 : 8 * pc + 4], "little", signed=True)
        imm = int.from_bytes(code[8 * pc + 4 : 8 * pc + 8], "little", signed=True)
        pc += 1
        if op == 0x61:
            assert src == 1
            regs[dst] = ctx[off // 4]
        elif op == 0x54:
            regs[dst] &= imm & 0xFFFFFFFF
        elif op == 0x74:
            regs[dst] >>= imm
        elif op == 0xBC:
            regs[dst] = regs[src]
        elif op == 0xB4:
            regs[dst] = imm
        elif op == 0x55:
            pc += off if regs[dst] != imm else 0
        elif op == 0x5D:
            pc += off if regs[dst] != regs[src] else 0
        elif op == 0x95:
            return regs[0]
        else:
            raise AssertionError(f"unexpected opcode {op:#x}")
    raise AssertionError("program does not end")


def test_program_allow_list():
    code = v2_devices.program(
        DeviceRules(
            [
                {"allow": False, "access": "rwm"},
                {"allow": True, "type": "c", "major": 1, "minor": 3, "access": "rwm"},
                {"allow": True, "type": "c", "major": 136, "access": "rw"},
                {"allow": True, "type": "b", "access": "m"},
            ]
        )
    )
    assert run_program(code, CHAR, READ | WRITE, 1, 3) == 1
    assert run_program(code, CHAR, MKNOD, 1, 3) == 1
    assert run_program(code, CHAR, READ, 1, 5) == 0
    assert run_program(code, CHAR, READ | WRITE, 136, 7) == 1
    assert run_program(code, CHAR, MKNOD, 136, 7) == 0
    assert run_program(code, BLOCK, MKNOD, 8, 0) == 1
    assert run_program(code, BLOCK, READ, 8, 0) == 0
    assert run_program(code, BLOCK, READ, 1, 3) == 0


def test_program_deny_list():
    code = v2_devices.program(
        DeviceRules([{"allow": True}, {"allow": False, "type": "c", "major": 1, "minor": 11}])
    )
    assert run_program(code, CHAR, READ, 1, 11) == 0
    assert run_program(code, CHAR, READ, 1, 3) == 1
    assert run_program(code, BLOCK, READ | WRITE, 8, 0) == 1


def test_program_of_no_rules_denies_everything():
    code = v2_devices.program(DeviceRules([]))
    assert len(code) == 8 * 8  # prologue (6), default verdict, exit
    assert run_program(code, CHAR, READ, 1, 3) == 0
