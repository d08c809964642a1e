"""Parsing a mount's `options` into mount(2) flags, propagation, recursive attributes and data."""

from ocirun import syscalls as sc

# option -> (clears the flag?, flag)
FLAGS = {
    "defaults": (False, 0), "rw": (True, sc.MS_RDONLY), "ro": (False, sc.MS_RDONLY),
    "suid": (True, sc.MS_NOSUID), "nosuid": (False, sc.MS_NOSUID),
    "dev": (True, sc.MS_NODEV), "nodev": (False, sc.MS_NODEV),
    "exec": (True, sc.MS_NOEXEC), "noexec": (False, sc.MS_NOEXEC),
    "sync": (False, sc.MS_SYNCHRONOUS), "async": (True, sc.MS_SYNCHRONOUS),
    "dirsync": (False, sc.MS_DIRSYNC), "remount": (False, sc.MS_REMOUNT),
    "mand": (False, sc.MS_MANDLOCK), "nomand": (True, sc.MS_MANDLOCK),
    "atime": (True, sc.MS_NOATIME), "noatime": (False, sc.MS_NOATIME),
    "diratime": (True, sc.MS_NODIRATIME), "nodiratime": (False, sc.MS_NODIRATIME),
    "relatime": (False, sc.MS_RELATIME), "norelatime": (True, sc.MS_RELATIME),
    "strictatime": (False, sc.MS_STRICTATIME), "nostrictatime": (True, sc.MS_STRICTATIME),
    "lazytime": (False, sc.MS_LAZYTIME), "nolazytime": (True, sc.MS_LAZYTIME),
    "bind": (False, sc.MS_BIND), "rbind": (False, sc.MS_BIND | sc.MS_REC),
    "silent": (False, sc.MS_SILENT), "loud": (True, sc.MS_SILENT),
    "iversion": (False, 1 << 23), "noiversion": (True, 1 << 23),
    "symfollow": (True, sc.MS_NOSYMFOLLOW), "nosymfollow": (False, sc.MS_NOSYMFOLLOW),
}  # fmt: skip

PROPAGATION = {
    "private": sc.MS_PRIVATE, "rprivate": sc.MS_PRIVATE | sc.MS_REC,
    "shared": sc.MS_SHARED, "rshared": sc.MS_SHARED | sc.MS_REC,
    "slave": sc.MS_SLAVE, "rslave": sc.MS_SLAVE | sc.MS_REC,
    "unbindable": sc.MS_UNBINDABLE, "runbindable": sc.MS_UNBINDABLE | sc.MS_REC,
}  # fmt: skip

# the recursive access-time setting is one 3-valued field (MOUNT_ATTR__ATIME): option -> value
ATIME = {
    "rnoatime": sc.MOUNT_ATTR_NOATIME, "rstrictatime": sc.MOUNT_ATTR_STRICTATIME,
    "ratime": sc.MOUNT_ATTR_RELATIME, "rrelatime": sc.MOUNT_ATTR_RELATIME,
    "rnostrictatime": sc.MOUNT_ATTR_RELATIME,
}  # fmt: skip


# recursive mount attributes (mount_setattr with AT_RECURSIVE): option -> (clears?, attribute)
RECURSIVE = {
    "rro": (False, sc.MOUNT_ATTR_RDONLY), "rrw": (True, sc.MOUNT_ATTR_RDONLY),
    "rnosuid": (False, sc.MOUNT_ATTR_NOSUID), "rsuid": (True, sc.MOUNT_ATTR_NOSUID),
    "rnodev": (False, sc.MOUNT_ATTR_NODEV), "rdev": (True, sc.MOUNT_ATTR_NODEV),
    "rnoexec": (False, sc.MOUNT_ATTR_NOEXEC), "rexec": (True, sc.MOUNT_ATTR_NOEXEC),
    "rnodiratime": (False, sc.MOUNT_ATTR_NODIRATIME), "rdiratime": (True, sc.MOUNT_ATTR_NODIRATIME),
    "rnosymfollow": (False, sc.MOUNT_ATTR_NOSYMFOLLOW),
    "rsymfollow": (True, sc.MOUNT_ATTR_NOSYMFOLLOW),
    "rnorelatime": (True, 0),  # as runc: clears relatime, whose value is 0 (no change)
    **{name: (False, value) for name, value in ATIME.items()},  # parsed through ATIME
}  # fmt: skip


class MountOptions:
    """The parsed options of one mount."""

    __slots__ = (
        "flags", "propagation", "attr_set", "attr_clr", "data", "idmap", "recursive_idmap",
        "copy_up",
    )  # fmt: skip

    def __init__(self, options: list[str]) -> None:
        self.flags = 0
        self.propagation: list[int] = []
        self.attr_set = self.attr_clr = 0
        self.idmap = self.recursive_idmap = False
        self.copy_up = False  # tmpcopyup: the new tmpfs starts with the directory's contents
        data = []
        for option in options:
            if option in FLAGS:
                clear, flag = FLAGS[option]
                self.flags = (self.flags & ~flag) if clear else (self.flags | flag)
            elif option in PROPAGATION:
                self.propagation.append(PROPAGATION[option])
            elif option in ATIME:  # setting the field needs the whole field cleared
                self.attr_clr |= sc.MOUNT_ATTR__ATIME
                self.attr_set = (self.attr_set & ~sc.MOUNT_ATTR__ATIME) | ATIME[option]
            elif option in RECURSIVE:
                clear, attr = RECURSIVE[option]
                if clear:
                    self.attr_clr |= attr
                else:
                    self.attr_set |= attr
            elif option == "tmpcopyup":
                self.copy_up = True
            elif option in ("idmap", "ridmap"):
                self.idmap = True
                self.recursive_idmap = option == "ridmap"
            else:
                data.append(option)
        self.data = ",".join(data)

    @property
    def is_bind(self) -> bool:
        return bool(self.flags & sc.MS_BIND)
