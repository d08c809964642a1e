"""Writes to /proc through a handle verified to be procfs with nothing mounted over the file.

A knob such as /proc/sys/net/ipv4/ip_forward or /proc/self/oom_score_adj is opened from a
directory fd of /proc that fstatfs shows to be proc (and the root of it), without crossing
into another mount (RESOLVE_NO_XDEV) or following magic links, and the file itself must be
on proc: whatever the container's side has mounted over a knob or over /proc, the write
goes to the kernel's knob or nowhere (CVE-2025-52881).
"""

import os

from ocirun import syscalls as sc
from ocirun.errors import SetupError

PROC_SUPER_MAGIC = 0x9FA0
_PROC_ROOT_INO = 1


def write(name: str, text: str) -> None:
    """Write text, in one write(2), to /proc/<name> (e.g. "sys/kernel/hostname")."""
    root = os.open("/proc", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        if sc.fstatfs_type(root) != PROC_SUPER_MAGIC or os.fstat(root).st_ino != _PROC_ROOT_INO:
            raise SetupError(f"/proc/{name}: /proc is not a procfs root: not writing there")
        try:
            fd = sc.openat2(root, name, os.O_WRONLY,
                            sc.RESOLVE_NO_XDEV | sc.RESOLVE_NO_MAGICLINKS)  # fmt: skip
        except OSError as exc:
            if exc.errno == 18:  # EXDEV: something is mounted over it
                raise SetupError(f"/proc/{name}: not procfs (something is mounted over it): "
                                 "not writing there") from None  # fmt: skip
            raise
    finally:
        os.close(root)
    try:
        if sc.fstatfs_type(fd) != PROC_SUPER_MAGIC:
            raise SetupError(f"/proc/{name}: not on procfs: not writing there")
        os.write(fd, text.encode())
    finally:
        os.close(fd)
