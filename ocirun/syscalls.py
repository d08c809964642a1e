"""The one module of raw Linux calls: thin wrappers over libc and syscall(2) through _ctypes.

Each wrapper raises OSError with errno and a message naming the call and its path. Everything
the os module already offers (setresuid, setgroups, mknod, umask, ...) is used from there.
"""

# What this module needs of ctypes, made from its C core `_ctypes` as ctypes itself makes it:
# `import ctypes` defines some sixty classes on every create (cost: benchmarks/README.md).
import _ctypes
import os
from _ctypes import (
    FUNCFLAG_CDECL,
    FUNCFLAG_PYTHONAPI,
    FUNCFLAG_USE_ERRNO,
    Structure,
    byref,
    get_errno,
    sizeof,
)


def _simple_type(code: str) -> type:
    """A ctypes simple type by its struct-module code, as ctypes itself defines c_int etc."""
    return type(f"c_{code}", (_ctypes._SimpleCData,), {"_type_": code})


c_int, c_uint, c_long, c_ulong, c_uint64 = (_simple_type(code) for code in "iIlLQ")
c_int32, c_uint32 = c_int, c_uint


class _Library:
    """ctypes.CDLL(None) (or PyDLL, with FUNCFLAG_PYTHONAPI): the process's own symbols, each
    looked up once as a function returning c_int (ctypes' default), errno saved (use_errno)."""

    _handle = _ctypes.dlopen(None, 0)  # RTLD_LOCAL, ctypes' default mode

    def __init__(self, flags: int) -> None:
        class Function(_ctypes.CFuncPtr):
            _flags_ = flags
            _restype_ = c_int

        self._function = Function

    def __getattr__(self, name: str):
        function = self._function((name, self))
        setattr(self, name, function)
        return function


_libc = _Library(FUNCFLAG_CDECL | FUNCFLAG_USE_ERRNO)
_pythonapi = _Library(FUNCFLAG_CDECL | FUNCFLAG_PYTHONAPI)  # _pythonapi: the GIL stays held
_syscall = _libc.syscall
_syscall.restype = c_long
# for clone3: see fork_into
_syscall_holding_gil = _Library(FUNCFLAG_CDECL | FUNCFLAG_PYTHONAPI | FUNCFLAG_USE_ERRNO).syscall
_syscall_holding_gil.restype = c_long

# syscall numbers of the calls libc may not wrap, per architecture
_NR = {
    "x86_64": {"pivot_root": 155, "setns": 308, "unshare": 272, "capget": 125, "capset": 126,
               "ioprio_set": 251, "sched_setattr": 314, "open_tree": 428, "move_mount": 429,
               "openat2": 437, "close_range": 436, "mount_setattr": 442, "keyctl": 250,
               "pidfd_open": 434, "bpf": 321, "set_mempolicy": 238, "clone3": 435,
               "seccomp": 317, "pidfd_getfd": 438},
    "aarch64": {"pivot_root": 41, "setns": 268, "unshare": 97, "capget": 90, "capset": 91,
                "ioprio_set": 30, "sched_setattr": 274, "open_tree": 428, "move_mount": 429,
                "openat2": 437, "close_range": 436, "mount_setattr": 442, "keyctl": 219,
                "pidfd_open": 434, "bpf": 280, "set_mempolicy": 237, "clone3": 435,
                "seccomp": 277, "pidfd_getfd": 438},
}[os.uname().machine]  # fmt: skip

# mount(2) flags
MS_RDONLY = 0x1
MS_NOSUID = 0x2
MS_NODEV = 0x4
MS_NOEXEC = 0x8
MS_SYNCHRONOUS = 0x10
MS_REMOUNT = 0x20
MS_MANDLOCK = 0x40
MS_DIRSYNC = 0x80
MS_NOSYMFOLLOW = 0x100
MS_NOATIME = 0x400
MS_NODIRATIME = 0x800
MS_BIND = 0x1000
MS_MOVE = 0x2000
MS_REC = 0x4000
MS_SILENT = 0x8000
MS_UNBINDABLE = 0x20000
MS_PRIVATE = 0x40000
MS_SLAVE = 0x80000
MS_SHARED = 0x100000
MS_RELATIME = 0x200000
MS_STRICTATIME = 0x1000000
MS_LAZYTIME = 0x2000000

MNT_DETACH = 0x2

# openat2(2) resolve flags
RESOLVE_NO_XDEV = 0x01
RESOLVE_NO_MAGICLINKS = 0x02
RESOLVE_IN_ROOT = 0x10

# mount_setattr(2)
AT_RECURSIVE = 0x8000
MOUNT_ATTR_RDONLY = 0x1
MOUNT_ATTR_NOSUID = 0x2
MOUNT_ATTR_NODEV = 0x4
MOUNT_ATTR_NOEXEC = 0x8
MOUNT_ATTR_RELATIME = 0x0
MOUNT_ATTR_NOATIME = 0x10
MOUNT_ATTR_STRICTATIME = 0x20
MOUNT_ATTR__ATIME = 0x70
MOUNT_ATTR_NODIRATIME = 0x80
MOUNT_ATTR_IDMAP = 0x100000
MOUNT_ATTR_NOSYMFOLLOW = 0x200000
OPEN_TREE_CLONE = 1
OPEN_TREE_CLOEXEC = 0o2000000
MOVE_MOUNT_F_EMPTY_PATH = 0x4
MOVE_MOUNT_T_EMPTY_PATH = 0x40
AT_EMPTY_PATH = 0x1000

# prctl(2)
PR_SET_DUMPABLE = 4
PR_SET_KEEPCAPS = 8
PR_CAPBSET_READ = 23
PR_CAPBSET_DROP = 24
PR_SET_NO_NEW_PRIVS = 38
PR_SET_CHILD_SUBREAPER = 36
PR_CAP_AMBIENT = 47
PR_CAP_AMBIENT_RAISE = 2
PR_CAP_AMBIENT_CLEAR_ALL = 4
PR_GET_TID_ADDRESS = 40

# clone3(2)
CLONE_CHILD_CLEARTID = 0x00200000
CLONE_CHILD_SETTID = 0x01000000
CLONE_INTO_CGROUP = 0x200000000
SIGCHLD = 17  # x86_64 and aarch64


class _CloneArgs(Structure):
    _fields_ = [(name, c_uint64) for name in (
        "flags", "pidfd", "child_tid", "parent_tid", "exit_signal", "stack", "stack_size", "tls",
        "set_tid", "set_tid_size", "cgroup",
    )]  # fmt: skip


def write_file(path: str, text: str) -> None:
    """One write(2) of text to an existing file (procfs and sysfs knobs want a single write)."""
    fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
    try:
        os.write(fd, text.encode())
    finally:
        os.close(fd)


def _check(result: int, call: str, path: object = None) -> int:
    if result < 0:
        err = get_errno()
        where = f"{call} {path}" if path is not None else call
        raise OSError(err, f"{where}: {os.strerror(err)}")
    return result


def _b(path: str | bytes | None) -> bytes | None:
    return os.fsencode(path) if path is not None else None


def syscall(name: str, *args: object) -> int:
    """Call a raw syscall by name; raises OSError on failure."""
    return _check(_syscall(_NR[name], *args), name)


def mount(source: str | None, target: str, fstype: str | None, flags: int = 0,
          data: str | None = None) -> None:  # fmt: skip
    _check(_libc.mount(_b(source), _b(target), _b(fstype), c_ulong(flags), _b(data)),
           "mount", target)  # fmt: skip


def umount(target: str, flags: int = 0) -> None:
    _check(_libc.umount2(_b(target), flags), "umount", target)


def fork_into(cgroup_fd: int, clone_flags: int = 0) -> int:
    """os.fork(), but the child starts in the cgroup2 cgroup of the directory cgroup_fd (-1:
    the caller's) and in the new namespaces of clone_flags.

    clone3(CLONE_INTO_CGROUP) puts the child there as it is born: moving a process afterwards
    (cgroup.procs) waits for an RCU grace period. The rest is what os.fork and
    glibc's fork do: PyOS_BeforeFork/AfterFork_* around the syscall, made with the GIL held,
    and the child's thread id written into its thread descriptor (the address the kernel
    keeps for CLONE_CHILD_CLEARTID, PR_GET_TID_ADDRESS). Raises OSError: ENOSYS before Linux
    5.3, E2BIG or EINVAL before 5.7 (no CLONE_INTO_CGROUP), EACCES or EPERM when the caller
    may not move processes into that cgroup.
    """
    tid_address = c_uint64()
    _check(_libc.prctl(PR_GET_TID_ADDRESS, byref(tid_address), 0, 0, 0), "prctl")
    args = _CloneArgs(
        flags=CLONE_CHILD_SETTID | CLONE_CHILD_CLEARTID | clone_flags
              | (CLONE_INTO_CGROUP if cgroup_fd >= 0 else 0),
        child_tid=tid_address.value, exit_signal=SIGCHLD, cgroup=max(cgroup_fd, 0),
    )  # fmt: skip
    python = _pythonapi
    python.PyOS_BeforeFork()
    pid = _syscall_holding_gil(_NR["clone3"], byref(args), sizeof(args))
    if pid == 0:
        python.PyOS_AfterFork_Child()
        return 0
    err = get_errno()
    python.PyOS_AfterFork_Parent()
    if pid < 0:
        raise OSError(err, f"clone3: {os.strerror(err)}")
    return pid


def pivot_root(new_root: str, put_old: str) -> None:
    _check(_syscall(_NR["pivot_root"], _b(new_root), _b(put_old)), "pivot_root", new_root)


def unshare(flags: int) -> None:
    _check(_libc.unshare(flags), "unshare")


def setns(fd: int, nstype: int = 0) -> None:
    _check(_libc.setns(fd, nstype), "setns")


def sethostname(name: str) -> None:
    data = name.encode()
    _check(_libc.sethostname(data, len(data)), "sethostname")


def setdomainname(name: str) -> None:
    data = name.encode()
    _check(_libc.setdomainname(data, len(data)), "setdomainname")


def prctl(option: int, arg2: int = 0, arg3: int = 0, arg4: int = 0, arg5: int = 0) -> int:
    args = (c_ulong(a) for a in (arg2, arg3, arg4, arg5))
    return _check(_libc.prctl(option, *args), "prctl")


class _Rlimit(Structure):
    _fields_ = [("cur", c_uint64), ("max", c_uint64)]


def setrlimit(resource: int, soft: int, hard: int) -> None:
    """prlimit(2) on ourselves (the resource module is one more shared library to load)."""
    limit = _Rlimit(soft, hard)
    _check(_libc.prlimit(0, resource, byref(limit), None), "prlimit")


def personality(persona: int) -> None:
    _check(_libc.personality(c_ulong(persona)), "personality")


def close_range(first: int, last: int = 0xFFFFFFFF, flags: int = 0) -> None:
    _check(_syscall(_NR["close_range"], first, c_uint(last), flags), "close_range")


class _OpenHow(Structure):
    _fields_ = [("flags", c_uint64), ("mode", c_uint64),
                ("resolve", c_uint64)]  # fmt: skip


def openat2(dirfd: int, path: str, flags: int, resolve: int, mode: int = 0) -> int:
    how = _OpenHow(flags | os.O_CLOEXEC, mode, resolve)
    return _check(
        _syscall(_NR["openat2"], dirfd, _b(path), byref(how), sizeof(how)),
        "openat2", path,
    )  # fmt: skip


class _MountAttr(Structure):
    _fields_ = [("attr_set", c_uint64), ("attr_clr", c_uint64),
                ("propagation", c_uint64), ("userns_fd", c_uint64)]  # fmt: skip


def mount_setattr(dirfd: int, path: str, flags: int, attr_set: int = 0, attr_clr: int = 0,
                  propagation: int = 0, userns_fd: int = 0) -> None:  # fmt: skip
    attr = _MountAttr(attr_set, attr_clr, propagation, userns_fd)
    _check(_syscall(_NR["mount_setattr"], dirfd, _b(path), flags, byref(attr),
                    sizeof(attr)), "mount_setattr", path)  # fmt: skip


def open_tree(dirfd: int, path: str, flags: int) -> int:
    return _check(_syscall(_NR["open_tree"], dirfd, _b(path), flags), "open_tree", path)


def move_mount(from_fd: int, to_fd: int) -> None:
    """Attach the detached mount from_fd onto the file or directory to_fd refers to."""
    flags = MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH
    _check(_syscall(_NR["move_mount"], from_fd, b"", to_fd, b"", flags), "move_mount")


class _CapHeader(Structure):
    _fields_ = [("version", c_uint32), ("pid", c_int)]


class _CapData(Structure):
    _fields_ = [("effective", c_uint32), ("permitted", c_uint32),
                ("inheritable", c_uint32)]  # fmt: skip


_LINUX_CAPABILITY_VERSION_3 = 0x20080522


def capset(effective: int, permitted: int, inheritable: int) -> None:
    """Set this thread's effective, permitted and inheritable capability sets (64-bit masks)."""
    header = _CapHeader(_LINUX_CAPABILITY_VERSION_3, 0)
    data = (_CapData * 2)()
    for i in (0, 1):
        shift = 32 * i
        data[i].effective = (effective >> shift) & 0xFFFFFFFF
        data[i].permitted = (permitted >> shift) & 0xFFFFFFFF
        data[i].inheritable = (inheritable >> shift) & 0xFFFFFFFF
    _check(_syscall(_NR["capset"], byref(header), data), "capset")


def fstatfs_type(fd: int) -> int:
    """f_type of the filesystem fd is on (os.fstatvfs does not give it)."""
    buf = (c_long * 32)()  # room for struct statfs, whose first field f_type is a long
    _check(_libc.fstatfs(fd, buf), "fstatfs")
    return buf[0]


def capget() -> tuple[int, int, int]:
    """This thread's (effective, permitted, inheritable) capability sets as 64-bit masks."""
    header = _CapHeader(_LINUX_CAPABILITY_VERSION_3, 0)
    data = (_CapData * 2)()
    _check(_syscall(_NR["capget"], byref(header), data), "capget")
    return tuple(  # type: ignore[return-value]
        getattr(data[0], name) | getattr(data[1], name) << 32
        for name in ("effective", "permitted", "inheritable")
    )


def ioprio_set(ioclass: int, priority: int) -> None:
    _check(_syscall(_NR["ioprio_set"], 1, 0, (ioclass << 13) | priority), "ioprio_set")


class _SchedAttr(Structure):
    _fields_ = [("size", c_uint32), ("sched_policy", c_uint32),
                ("sched_flags", c_uint64), ("sched_nice", c_int32),
                ("sched_priority", c_uint32), ("sched_runtime", c_uint64),
                ("sched_deadline", c_uint64), ("sched_period", c_uint64)]  # fmt: skip


def sched_setattr(policy: int, flags: int, nice: int, priority: int, runtime: int,
                  deadline: int, period: int) -> None:  # fmt: skip
    attr = _SchedAttr(sizeof(_SchedAttr), policy, flags, nice, priority, runtime,
                      deadline, period)  # fmt: skip
    _check(_syscall(_NR["sched_setattr"], 0, byref(attr), 0), "sched_setattr")


def set_mempolicy(mode: int, nodes: set[int]) -> None:
    """The NUMA memory policy of this thread (inherited by children, kept across execve)."""
    bits = 64 * (max(nodes, default=0) // 64 + 1)
    words = (c_ulong * (bits // 64))()
    for node in nodes:
        words[node // 64] |= 1 << (node % 64)
    mask = words if nodes else None
    _check(_syscall(_NR["set_mempolicy"], mode, mask, c_ulong(bits + 1 if nodes else 0)),
           "set_mempolicy")  # fmt: skip


def join_session_keyring(name: str | None = None) -> None:
    """keyctl(KEYCTL_JOIN_SESSION_KEYRING): a fresh session keyring, as runc gives one."""
    _check(_syscall(_NR["keyctl"], 1, _b(name)), "keyctl")


SIOCGIFFLAGS = 0x8913
SIOCSIFFLAGS = 0x8914
IFF_UP = 0x1


def interface_up(name: str) -> None:
    """Set IFF_UP on a network interface of the current network namespace (the loopback)."""
    import fcntl

    fd = _check(_libc.socket(2, 2 | 0o2000000, 0), "socket")  # AF_INET, SOCK_DGRAM|SOCK_CLOEXEC
    try:
        ifreq = bytearray(name.encode().ljust(16, b"\0") + bytes(24))
        fcntl.ioctl(fd, SIOCGIFFLAGS, ifreq)
        flags = int.from_bytes(ifreq[16:18], "little") | IFF_UP
        ifreq[16:18] = flags.to_bytes(2, "little")
        fcntl.ioctl(fd, SIOCSIFFLAGS, ifreq)
    finally:
        os.close(fd)
