"""Devices with real containers: linux.devices, the default devices and /dev links."""

import os

from helpers import add_userns, create_fails, run_probe


def test_configured_device_type_numbers_mode_and_owner(ocirun, make_bundle, cid):
    bundle = make_bundle()
    bundle.config["linux"]["devices"] = [
        {"path": "/dev/mydev", "type": "c", "major": 1, "minor": 5, "fileMode": 0o640,
         "uid": 1000, "gid": 1001},
        {"path": "/dev/myblk", "type": "b", "major": 7, "minor": 200},
        {"path": "/dev/myfifo", "type": "p"},
    ]  # fmt: skip
    out = run_probe(ocirun, bundle, cid, "stat -c '%F %t %T %a %u %g' /dev/mydev /dev/myblk; "
                    "stat -c %F /dev/myfifo")  # fmt: skip
    assert out.splitlines() == [
        "character special file 1 5 640 1000 1001",
        "block special file 7 c8 666 0 0",
        "fifo",
    ]


def test_default_devices_and_links(ocirun, make_bundle, cid):
    bundle = make_bundle()
    script = (
        "for d in null zero full random urandom tty; do stat -c '%n %t %T' /dev/$d; done; "
        "for l in fd stdin stdout stderr ptmx; do readlink /dev/$l; done"
    )
    out = run_probe(ocirun, bundle, cid, script)
    assert out.splitlines() == [
        "/dev/null 1 3", "/dev/zero 1 5", "/dev/full 1 7", "/dev/random 1 8",
        "/dev/urandom 1 9", "/dev/tty 5 0", "/proc/self/fd", "/proc/self/fd/0",
        "/proc/self/fd/1", "/proc/self/fd/2", "pts/ptmx",
    ]  # fmt: skip


def test_a_device_outside_dev(ocirun, make_bundle, cid, rootfs):
    bundle = make_bundle()
    bundle.own_rootfs(rootfs)  # the node is made in the rootfs: not in the shared one
    bundle.config["linux"]["devices"] = [{"path": "/run/null", "type": "c", "major": 1, "minor": 3}]
    assert (
        run_probe(ocirun, bundle, cid, "echo x > /run/null && stat -c %t:%T /run/null") == "1:3\n"
    )


def test_a_device_over_another_file_is_an_error(ocirun, make_bundle, cid, rootfs):
    bundle = make_bundle()
    bundle.own_rootfs(rootfs)
    bundle.config["linux"]["devices"] = [{"path": "/etc/passwd", "type": "c", "major": 1,
                                          "minor": 3}]  # fmt: skip
    assert "/etc/passwd" in create_fails(ocirun, bundle, cid)
    assert os.path.getsize(os.path.join(bundle.path, "rootfs", "etc", "passwd")) > 0


def test_devices_are_bound_from_the_host_in_a_user_namespace(
    ocirun, make_bundle, cid, userns_rootfs
):
    bundle = make_bundle()
    add_userns(bundle.config, userns_rootfs)
    bundle.config["linux"]["devices"] = [{"path": "/dev/kmsg", "type": "c", "major": 1,
                                          "minor": 11}]  # fmt: skip
    script = "stat -c %t:%T /dev/kmsg /dev/null; grep -c ' /dev/kmsg ' /proc/self/mountinfo"
    assert run_probe(ocirun, bundle, cid, script).split() == ["1:b", "1:3", "1"]
