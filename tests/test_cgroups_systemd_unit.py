"""The systemd cgroup driver's pure parts, anywhere: unit names and slices from cgroupsPath,
resources and annotations as unit properties, the D-Bus wire format (and, against a bus
daemon of the test's own, the client). tests/test_cgroups_systemd.py runs it against systemd."""

import os
import shutil
import subprocess
import time

import pytest

from ocirun import cgroups
from ocirun.cgroups import detect
from ocirun.cgroups.systemd import SystemdManager, dbus, properties, units
from ocirun.errors import CgroupError

UNIFIED_MOUNTINFO = "25 1 0:23 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw,nsdelegate\n"
HYBRID_MOUNTINFO = """\
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
"""


@pytest.fixture
def host(tmp_path, monkeypatch):
    def use(mountinfo: str) -> None:
        (tmp_path / "mountinfo").write_text(mountinfo)
        real_host = detect.host
        monkeypatch.setattr(detect, "host", lambda: real_host(str(tmp_path / "mountinfo")))

    return use


def never():
    raise AssertionError("systemd's version was asked for")


# --- names -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("system.slice:ocirun:abc", ("system.slice", "ocirun-abc.scope")),
        (":docker:abc", ("system.slice", "docker-abc.scope")),  # empty slice: system.slice
        (None, ("system.slice", "ocirun-abc.scope")),  # runc: ":runc:<id>"
        ("", ("system.slice", "ocirun-abc.scope")),
        ("machine.slice:libpod:abc", ("machine.slice", "libpod-abc.scope")),
        ("a-b.slice:p:x", ("a-b.slice", "p-x.scope")),
        ("system.slice:ignored:my-pod.slice", ("system.slice", "my-pod.slice")),  # a slice unit
        ("-.slice:p:x", ("-.slice", "p-x.scope")),
    ],
)
def test_unit_names(path, expected):
    assert units.parse(path, "abc") == expected


@pytest.mark.parametrize(
    "path",
    ["/system.slice/abc", "abc", "a:b", "a:b:c:d", "system.slice:p:", "system:p:x",
     "a/b.slice:p:x", "a--b.slice:p:x", "-a.slice:p:x", "system.slice:p:a/b"],
)  # fmt: skip
def test_paths_not_of_the_systemd_form_are_refused(path):
    with pytest.raises(CgroupError):
        units.parse(path, "abc")


@pytest.mark.parametrize(
    ("slice_", "path"),
    [
        ("system.slice", "/system.slice"),
        ("a-b.slice", "/a.slice/a-b.slice"),
        ("a-b-c.slice", "/a.slice/a-b.slice/a-b-c.slice"),
        ("-.slice", "/"),
    ],
)
def test_slices_expand_to_their_ancestors(slice_, path):
    assert units.expand_slice(slice_) == path


def test_cgroup_paths():
    assert units.cgroup_path("system.slice", "x.scope") == "/system.slice/x.scope"
    assert units.cgroup_path("-.slice", "x.scope") == "/x.scope"
    assert units.cgroup_path("a-b.slice", "x.scope") == "/a.slice/a-b.slice/x.scope"


def test_manager_for_unified_host(host):
    host(UNIFIED_MOUNTINFO)
    manager = cgroups.manager_for("a-b.slice:ocirun:abc", "abc", systemd=True)
    assert isinstance(manager, SystemdManager)
    assert manager.unit == "ocirun-abc.scope" and manager.v2
    assert manager.path == "/a.slice/a-b.slice/ocirun-abc.scope;unit=ocirun-abc.scope"
    assert manager.mount_sources() == [
        ("", "/sys/fs/cgroup/a.slice/a-b.slice/ocirun-abc.scope", "cgroup2")
    ]


def test_manager_for_hybrid_host_uses_the_unit_path_in_every_hierarchy(host):
    host(HYBRID_MOUNTINFO)
    manager = cgroups.manager_for(None, "abc", systemd=True)
    assert not manager.v2
    sources = {name: directory for name, directory, _ in manager.mount_sources()}
    assert sources == {
        name: f"/sys/fs/cgroup/{name}/system.slice/ocirun-abc.scope"
        for name in ("cpu", "memory", "systemd", "unified")
    }


def test_open_existing_rebuilds_the_systemd_manager(host):
    host(UNIFIED_MOUNTINFO)
    made = cgroups.manager_for("system.slice:p:x", "x", systemd=True)
    again = cgroups.open_existing(made.path)
    assert isinstance(again, SystemdManager) and again.unit == "p-x.scope"
    assert again.path == made.path and again.started


def test_cgroupfs_paths_never_load_the_systemd_driver(host):
    host(UNIFIED_MOUNTINFO)
    assert not isinstance(cgroups.open_existing("/ocirun/x"), SystemdManager)
    with pytest.raises(CgroupError, match="needs --systemd-cgroup"):
        cgroups.manager_for("system.slice:p:x", "x")


def test_a_bad_annotation_is_refused_before_anything_is_made(host):
    host(UNIFIED_MOUNTINFO)
    with pytest.raises(CgroupError, match="org.systemd.property.CPUWeight"):
        cgroups.manager_for(None, "x", True, {"org.systemd.property.CPUWeight": "[1, 'a']"})


# --- properties ----------------------------------------------------------------------------


def test_unit_properties_of_a_scope_and_a_slice():
    scope = dict(properties.unit_properties("system.slice", "p-x.scope", 42, True, "x"))
    assert scope["Description"] == ("s", "ocirun container x")
    assert scope["Slice"] == ("s", "system.slice") and scope["Delegate"] == ("b", True)
    assert scope["PIDs"] == ("au", [42]) and scope["DefaultDependencies"] == ("b", False)
    assert scope["IOAccounting"] == ("b", True) and scope["TasksAccounting"] == ("b", True)
    unit = dict(properties.unit_properties("system.slice", "x.slice", 42, False))
    assert unit["Wants"] == ("as", ["system.slice"]) and "Delegate" not in unit
    assert unit["BlockIOAccounting"] == ("b", True)


def test_v2_resources():
    resources = {
        "memory": {"limit": 64 << 20, "reservation": 32 << 20, "swap": 96 << 20},
        "cpu": {"shares": 1024, "quota": 50000, "period": 100000},
        "pids": {"limit": 20},
        "blockIO": {"weight": 500},
    }
    props = dict(properties.resource_properties(resources, True, lambda: 252))
    assert props == {
        "MemoryMax": ("t", 64 << 20),
        "MemoryLow": ("t", 32 << 20),
        "MemorySwapMax": ("t", 32 << 20),  # v2's swap is beyond memory
        "CPUWeight": ("t", 39),  # runc 1.1's formula
        "CPUQuotaPeriodUSec": ("t", 100000),
        "CPUQuotaPerSecUSec": ("t", 500000),
        "IOWeight": ("t", 4950),  # runc 1.1: 1 + (500 - 10) * 9999 // 990
        "TasksMax": ("t", 20),
    }


def test_v1_resources():
    resources = {"memory": {"limit": 1 << 30}, "cpu": {"shares": 512}, "blockIO": {"weight": 300}}
    props = dict(properties.resource_properties(resources, False, never))
    assert props == {
        "MemoryLimit": ("t", 1 << 30),
        "CPUShares": ("t", 512),
        "BlockIOWeight": ("t", 300),
    }


def test_unlimited_values_are_uint64_max():
    resources = {"memory": {"limit": -1, "swap": -1}, "pids": {"limit": -1}}
    props = dict(properties.resource_properties(resources, True, never))
    top = properties.UINT64_MAX
    assert props == {"MemoryMax": ("t", top), "MemorySwapMax": ("t", top), "TasksMax": ("t", top)}


@pytest.mark.parametrize(
    ("quota", "period", "version", "expected"),
    [
        (50000, 100000, 252, {"CPUQuotaPeriodUSec": 100000, "CPUQuotaPerSecUSec": 500000}),
        (12345, 0, 252, {"CPUQuotaPerSecUSec": 130000}),  # rounded up to 10 ms per second
        (-1, 0, 252, {"CPUQuotaPerSecUSec": properties.UINT64_MAX}),
        (0, 50000, 252, {"CPUQuotaPeriodUSec": 50000, "CPUQuotaPerSecUSec": properties.UINT64_MAX}),
        (50000, 100000, 241, {"CPUQuotaPerSecUSec": 500000}),  # no period before v242
        (0, 0, 252, {}),
    ],
)
def test_cpu_quota(quota, period, version, expected):
    props = properties.cpu_quota_properties(quota, period, lambda: version)
    assert {name: value for name, (_, value) in props} == expected


def test_cpuset_masks():
    assert properties.range_to_bits("0") == b"\x01"
    assert properties.range_to_bits("0-2,5") == b"\x27"
    assert properties.range_to_bits("8") == b"\x00\x01"
    props = dict(properties.cpuset_properties("1", "0", lambda: 252))
    assert props == {"AllowedCPUs": ("ay", b"\x02"), "AllowedMemoryNodes": ("ay", b"\x01")}
    assert properties.cpuset_properties("1", "", lambda: 243) == []  # before v244
    with pytest.raises(CgroupError):
        properties.range_to_bits("3-1")


def test_unified_keys():
    unified = {"memory.high": "1000000", "cpu.max": "max 100000", "pids.max": "max", "io.x": "1"}
    props = dict(properties.unified_properties(unified, lambda: 252))
    assert props == {
        "MemoryHigh": ("t", 1000000),
        "CPUQuotaPeriodUSec": ("t", 100000),
        "CPUQuotaPerSecUSec": ("t", properties.UINT64_MAX),
        "TasksMax": ("t", properties.UINT64_MAX),
    }


def test_device_rules_as_an_allow_list(monkeypatch):
    monkeypatch.setattr(properties, "_device_groups", lambda: {("char", 136): "pts"})
    rules = [
        {"allow": False, "access": "rwm"},
        {"allow": True, "type": "c", "major": 1, "minor": 3, "access": "rw"},
        {"allow": True, "type": "b", "major": 8, "minor": 0, "access": "r"},
        {"allow": True, "type": "c", "major": 136, "access": "rwm"},
        {"allow": True, "type": "c", "access": "m"},
        {"allow": True, "type": "c", "major": 250, "access": "r"},  # no such group: skipped
        {"allow": True, "type": "c", "minor": 7, "access": "r"},  # *:7: systemd has none
    ]
    props = dict(properties.device_properties(rules))
    assert props["DevicePolicy"] == ("s", "strict")
    assert sorted(props["DeviceAllow"][1]) == sorted(
        [("/dev/char/1:3", "rw"), ("/dev/block/8:0", "r"), ("char-pts", "rwm"), ("char-*", "m")]
    )


def test_device_rules_allow_all_and_deny_lists():
    allow_all = dict(properties.device_properties([{"allow": True, "access": "rwm"}]))
    assert allow_all == {"DevicePolicy": ("s", "auto"), "DeviceAllow": ("a(ss)", [])}
    deny_list = [{"allow": True}, {"allow": False, "type": "c", "major": 1, "minor": 3}]
    assert dict(properties.device_properties(deny_list)) == {
        "DevicePolicy": ("s", "strict"),  # systemd has no deny-lists: deny all (runc too)
        "DeviceAllow": ("a(ss)", []),
    }


# --- annotations ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("uint64 123456789", ("t", 123456789)),
        ("'inactive-or-failed'", ("s", "inactive-or-failed")),
        ('"a \\"b\\""', ("s", 'a "b"')),
        ("true", ("b", True)),
        ("false", ("b", False)),
        ("42", ("i", 42)),
        ("-7", ("i", -7)),
        ("1.5", ("d", 1.5)),
        ("@t 5", ("t", 5)),
        ("['a.service', 'b.service']", ("as", ["a.service", "b.service"])),
        ("@as []", ("as", [])),
        ("[uint32 1, 2]", ("au", [1, 2])),
        ("objectpath '/org/x'", ("o", "/org/x")),
        ("byte 255", ("y", 255)),
    ],
)
def test_gvariant_text_values(text, expected):
    assert properties.parse_variant(text) == expected


@pytest.mark.parametrize(
    "text", ["", "'open", "[]", "[1, 'a']", "uint32 -1", "byte 256", "1 2", "int32 'x'", "nope"]
)
def test_bad_gvariant_text_values(text):
    with pytest.raises(ValueError):
        properties.parse_variant(text)


def test_annotations_as_properties():
    annotations = {
        "org.systemd.property.TimeoutStopSec": "uint64 7",  # seconds -> TimeoutStopUSec
        "org.systemd.property.RuntimeMaxSec": "1.5",
        "org.systemd.property.TimeoutStopUSec": "uint64 9",  # USec already: kept
        "org.systemd.property.CollectMode": "'inactive-or-failed'",
        "org.systemd.property.After": "['a.service']",
        "other.annotation": "ignored",
    }
    assert sorted(properties.annotation_properties(annotations)) == sorted(
        [
            ("TimeoutStopUSec", ("t", 7000000)),
            ("RuntimeMaxUSec", ("t", 1500000)),
            ("TimeoutStopUSec", ("t", 9)),
            ("CollectMode", ("s", "inactive-or-failed")),
            ("After", ("as", ["a.service"])),
        ]
    )


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("org.systemd.property.Ab", "1"),  # too short
        ("org.systemd.property.Cpu1", "1"),  # not letters only
        ("org.systemd.property.TimeoutStopSec", "'x'"),  # seconds must be a number
        ("org.systemd.property.CollectMode", "'open"),
    ],
)
def test_bad_annotations_are_refused(key, value):
    with pytest.raises(CgroupError, match=key):
        properties.annotation_properties({key: value})


# --- the D-Bus wire format -----------------------------------------------------------------


def test_marshal_is_the_specifications_little_endian_format():
    buf = bytearray()
    dbus.marshal(buf, "yus", [1, 2, "ab"])
    assert bytes(buf) == b"\x01\0\0\0" + b"\x02\0\0\0" + b"\x02\0\0\0ab\0"
    buf = bytearray()
    dbus.marshal(buf, "a(sv)", [[("A", ("t", 1))]])
    # array length 24 (after the padding to 8): "A" (4+2), signature "t" (3), 7 to pad, uint64
    assert bytes(buf) == (
        b"\x18\0\0\0"
        + b"\0\0\0\0"
        + b"\x01\0\0\0A\0"
        + b"\x01t\0"
        + b"\0" * 7
        + b"\x01"
        + b"\0" * 7
    )


@pytest.mark.parametrize(
    ("signature", "values"),
    [
        ("ssa(sv)a(sa(sv))", ["u.scope", "replace",
                              [("PIDs", ("au", [1, 2])), ("Delegate", ("b", True)),
                               ("AllowedCPUs", ("ay", b"\x03")),
                               ("DeviceAllow", ("a(ss)", [("a", "r")])),
                               ("MemoryMax", ("t", properties.UINT64_MAX))],
                              []]),
        ("uoss", [7, "/org/freedesktop/systemd1/job/7", "u.scope", "done"]),
        ("a{sv}", [{"a": ("s", "x"), "b": ("x", -3)}]),
        ("gdnq", ["a(sv)", 1.5, -2, 65535]),
    ],
)  # fmt: skip
def test_unmarshal_reads_what_marshal_wrote(signature, values):
    buf = bytearray()
    dbus.marshal(buf, signature, values)
    decoded, end = dbus.unmarshal(bytes(buf), 0, signature)
    assert decoded == values and end == len(buf)


def test_signatures_split_into_complete_types():
    assert dbus.split_signature("sa(sv)a{sv}b") == ["s", "a(sv)", "a{sv}", "b"]
    for bad in ("(s", "a", "z"):
        with pytest.raises(ValueError):
            dbus.split_signature(bad)


@pytest.fixture
def bus_daemon(tmp_path):
    """A dbus-daemon of the test's own, on a socket in tmp_path."""
    if shutil.which("dbus-daemon") is None:
        pytest.skip("dbus-daemon is not installed")
    config = tmp_path / "bus.conf"
    socket = tmp_path / "bus"
    config.write_text(
        f"""<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig><type>custom</type><listen>unix:path={socket}</listen>
<auth>EXTERNAL</auth><policy context="default"><allow send_destination="*" eavesdrop="true"/>
<allow eavesdrop="true"/><allow own="*"/></policy></busconfig>"""
    )
    daemon = subprocess.Popen(["dbus-daemon", "--nofork", f"--config-file={config}"])
    try:
        deadline = time.monotonic() + 10
        while not socket.exists() and time.monotonic() < deadline and daemon.poll() is None:
            time.sleep(0.01)
        assert socket.exists(), "dbus-daemon did not start"
        yield str(socket)
    finally:
        daemon.kill()
        daemon.wait()


def test_client_against_a_real_bus_daemon(bus_daemon):
    connection = dbus.Connection(bus_daemon)
    try:
        assert connection.bus  # Hello and AddMatch were answered
        bus = ("org.freedesktop.DBus", "/org/freedesktop/DBus", "org.freedesktop.DBus")
        (names,) = connection.call(*bus, "ListNames")
        assert "org.freedesktop.DBus" in names
        (reply,) = connection.call(*bus, "RequestName", "su", ["org.ocirun.Test", 0])
        assert reply == 1  # DBUS_REQUEST_NAME_REPLY_PRIMARY_OWNER
        with pytest.raises(dbus.DBusError) as error:
            connection.call(*bus, "GetNameOwner", "s", ["org.nobody.Here"])
        assert error.value.name == "org.freedesktop.DBus.Error.NameHasNoOwner"
    finally:
        connection.close()


def test_no_bus_is_one_clear_error(tmp_path):
    with pytest.raises(CgroupError, match="cannot reach systemd over D-Bus"):
        dbus.Connection(str(tmp_path / "none"))


def test_create_without_systemd_fails_cleanly(ocirun, make_bundle, cid):
    """On a host where systemd is not PID 1 (and no bus): one error line, nothing left."""
    if os.path.exists(dbus.PRIVATE_SOCKET) or os.path.exists(dbus.SYSTEM_BUS):
        pytest.skip("systemd or a system bus is running here")
    bundle = make_bundle()
    bundle.config["linux"]["cgroupsPath"] = f"system.slice:ocirun:{cid}"
    result = ocirun("--systemd-cgroup", "create", "-b", bundle.write(), cid)
    assert result.returncode == 1 and "cannot reach systemd" in result.stderr, result.stderr
    assert "Traceback" not in result.stderr and ocirun.ids() == []


@pytest.mark.parametrize("path", ["/ocirun/x", "x", "a:b"])
def test_systemd_flag_refuses_other_paths(ocirun, make_bundle, cid, path):
    bundle = make_bundle()
    bundle.config["linux"]["cgroupsPath"] = path
    result = ocirun("--systemd-cgroup", "create", "-b", bundle.write(), cid)
    assert result.returncode == 1 and "slice:prefix:name" in result.stderr, result.stderr
    assert ocirun.ids() == []
