"""Device nodes in the container's /dev: the defaults every container gets, and linux.devices."""

import os
import stat

from ocirun import paths
from ocirun import syscalls as sc
from ocirun.errors import SetupError

DEFAULT_DEVICES = (
    {"path": "/dev/null", "type": "c", "major": 1, "minor": 3},
    {"path": "/dev/zero", "type": "c", "major": 1, "minor": 5},
    {"path": "/dev/full", "type": "c", "major": 1, "minor": 7},
    {"path": "/dev/random", "type": "c", "major": 1, "minor": 8},
    {"path": "/dev/urandom", "type": "c", "major": 1, "minor": 9},
    {"path": "/dev/tty", "type": "c", "major": 5, "minor": 0},
)

_TYPES = {"c": stat.S_IFCHR, "u": stat.S_IFCHR, "b": stat.S_IFBLK, "p": stat.S_IFIFO}

LINKS = (
    ("/proc/self/fd", "/dev/fd"),
    ("/proc/self/fd/0", "/dev/stdin"),
    ("/proc/self/fd/1", "/dev/stdout"),
    ("/proc/self/fd/2", "/dev/stderr"),
)


def create(root_fd: int, dev: dict, bind: bool, on_mount, strict: bool = True) -> None:
    """Create one device node (or, where mknod is not allowed, bind the host's node onto a file).

    strict: another kind of file already at the path is an error (config-linux.md#Devices)."""
    path = dev["path"]
    if strict:
        _check_existing(root_fd, dev)
    if bind:
        target_fd = paths.ensure_file(root_fd, path)
        try:
            on_mount(os.readlink(paths.fd_path(target_fd)))  # announced before it is made
            sc.mount(path, paths.fd_path(target_fd), None, sc.MS_BIND)
        finally:
            os.close(target_fd)
        return
    parent_fd, name = paths.open_parent(root_fd, path)
    try:
        try:
            os.unlink(name, dir_fd=parent_fd)
        except FileNotFoundError:
            pass
        mode = dev.get("fileMode", 0o666) | _TYPES[dev["type"]]
        rdev = os.makedev(dev.get("major", 0), dev.get("minor", 0))
        os.mknod(name, mode, rdev, dir_fd=parent_fd)
        os.chown(name, dev.get("uid", 0), dev.get("gid", 0), dir_fd=parent_fd,
                 follow_symlinks=False)  # fmt: skip
    finally:
        os.close(parent_fd)


def _check_existing(root_fd: int, dev: dict) -> None:
    """Refuse a file at the device's path that is not that device."""
    try:
        fd = paths.open_in_root(root_fd, dev["path"])
    except FileNotFoundError:
        return
    try:
        st = os.fstat(fd)
    finally:
        os.close(fd)
    kind = _TYPES[dev["type"]]
    rdev = os.makedev(dev.get("major", 0), dev.get("minor", 0))
    if stat.S_IFMT(st.st_mode) != kind or (kind != stat.S_IFIFO and st.st_rdev != rdev):
        raise SetupError(f"linux.devices: {dev['path']} exists and is not the requested device")


def create_links(root_fd: int) -> None:
    """/dev/fd, /dev/stdin..stderr, /dev/ptmx → pts/ptmx, and /dev/core where /proc/kcore exists."""
    links = list(LINKS) + [("pts/ptmx", "/dev/ptmx")]
    if os.path.exists("/proc/kcore"):
        links.append(("/proc/kcore", "/dev/core"))
    for target, path in links:
        parent_fd, name = paths.open_parent(root_fd, path)
        try:
            try:
                os.unlink(name, dir_fd=parent_fd)
            except (FileNotFoundError, IsADirectoryError):
                pass
            os.symlink(target, name, dir_fd=parent_fd)
        except FileExistsError:
            pass
        finally:
            os.close(parent_fd)
