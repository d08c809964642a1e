"""In-process tests of mountopts.py: a mount's options as flags, propagation, recursive
attributes, idmap and the data string, in the order they are given."""

import pytest

from ocirun import syscalls as sc
from ocirun.mountopts import MountOptions


def test_flags_set_and_cleared_in_order():
    opts = MountOptions(["ro", "nosuid", "rw", "noexec", "exec", "nodev"])
    assert opts.flags == sc.MS_NOSUID | sc.MS_NODEV


def test_bind_and_rbind():
    assert MountOptions(["bind"]).is_bind and not MountOptions(["bind"]).flags & sc.MS_REC
    assert MountOptions(["rbind"]).flags == sc.MS_BIND | sc.MS_REC
    assert not MountOptions(["ro"]).is_bind


def test_unknown_options_are_filesystem_data():
    opts = MountOptions(["nosuid", "mode=755", "size=65536k", "strictatime"])
    assert opts.data == "mode=755,size=65536k"
    assert opts.flags == sc.MS_NOSUID | sc.MS_STRICTATIME


def test_propagation_in_order():
    assert MountOptions(["rshared", "private"]).propagation == [
        sc.MS_SHARED | sc.MS_REC, sc.MS_PRIVATE,
    ]  # fmt: skip


def test_recursive_attributes():
    opts = MountOptions(["rro", "rnosuid", "rexec"])
    assert opts.attr_set == sc.MOUNT_ATTR_RDONLY | sc.MOUNT_ATTR_NOSUID
    assert opts.attr_clr == sc.MOUNT_ATTR_NOEXEC
    assert opts.flags == 0


@pytest.mark.parametrize(
    "option, value",
    [("rnoatime", sc.MOUNT_ATTR_NOATIME), ("rstrictatime", sc.MOUNT_ATTR_STRICTATIME),
     ("rrelatime", sc.MOUNT_ATTR_RELATIME)],
)  # fmt: skip
def test_recursive_atime_replaces_the_whole_field(option, value):
    opts = MountOptions(["rnoatime", option])
    assert opts.attr_clr & sc.MOUNT_ATTR__ATIME == sc.MOUNT_ATTR__ATIME
    assert opts.attr_set & sc.MOUNT_ATTR__ATIME == value


def test_idmap_and_copy_up():
    assert MountOptions(["idmap"]).idmap and not MountOptions(["idmap"]).recursive_idmap
    assert MountOptions(["ridmap"]).recursive_idmap
    assert MountOptions(["tmpcopyup"]).copy_up and MountOptions(["tmpcopyup"]).data == ""
