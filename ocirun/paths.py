"""Resolving container paths inside the rootfs, never escaping it, even through symlinks.

Every mount destination, device path, masked or read-only path is opened with openat2 and
RESOLVE_IN_ROOT against a directory fd of the rootfs: `..` and absolute symlinks stay inside, as if
the rootfs were `/`. The resulting O_PATH fd is then named as /proc/self/fd/N, so that the path that
was checked is the path that is mounted on (no check-then-use race).
"""

import os
import stat

from ocirun import syscalls

O_PATH = os.O_PATH | os.O_CLOEXEC
_RESOLVE = syscalls.RESOLVE_IN_ROOT | syscalls.RESOLVE_NO_MAGICLINKS


def open_in_root(root_fd: int, path: str, flags: int = O_PATH) -> int:
    """Open path (taken as relative to the rootfs) without leaving the rootfs."""
    return syscalls.openat2(root_fd, path.lstrip("/") or ".", flags, _RESOLVE)


def fd_path(fd: int) -> str:
    return f"/proc/self/fd/{fd}"


def mkdir_all(root_fd: int, path: str, mode: int = 0o755, _depth: int = 0) -> int:
    """Create every missing directory of path inside the rootfs; return an O_PATH fd of it.

    A dangling symlink on the way is followed as the kernel would, inside the rootfs: its target
    is created (runc's MkdirAllInRoot does the same)."""
    if _depth > 40:
        raise OSError(40, f"mkdir {path}: Too many levels of symbolic links")
    parts = [p for p in path.split("/") if p and p != "."]
    dir_fd = os.dup(root_fd)
    try:
        done = ""
        for part in parts:
            parent, done = done, f"{done}/{part}"
            try:
                next_fd = open_in_root(root_fd, done, O_PATH | os.O_DIRECTORY)
            except FileNotFoundError:
                try:
                    os.mkdir(part, mode, dir_fd=dir_fd)  # an O_PATH fd serves as dir_fd
                except FileExistsError:  # a dangling symlink (or a race)
                    _create_link_target(root_fd, dir_fd, parent, part, mode, _depth)
                next_fd = open_in_root(root_fd, done, O_PATH | os.O_DIRECTORY)
            os.close(dir_fd)
            dir_fd = next_fd
        return dir_fd
    except BaseException:
        os.close(dir_fd)
        raise


def _create_link_target(root_fd: int, dir_fd: int, parent: str, name: str, mode: int,
                        depth: int) -> None:  # fmt: skip
    """Create, inside the rootfs, the directory a dangling symlink parent/name points to."""
    try:
        target = os.readlink(name, dir_fd=dir_fd)
    except OSError:
        return  # not a symlink: the caller's open decides
    path = target if target.startswith("/") else f"{parent}/{target}"
    os.close(mkdir_all(root_fd, path, mode, depth + 1))


def ensure_file(root_fd: int, path: str) -> int:
    """Make sure path exists as a non-directory inside the rootfs (creating an empty file)."""
    try:
        return open_in_root(root_fd, path)
    except FileNotFoundError:
        pass
    parent_fd, name = open_parent(root_fd, path)
    try:
        flags = os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW
        os.close(os.open(name, flags, 0o644, dir_fd=parent_fd))
    finally:
        os.close(parent_fd)
    return open_in_root(root_fd, path)


def open_parent(root_fd: int, path: str) -> tuple[int, str]:
    """(O_PATH fd of path's parent directory, created if missing; path's last component)."""
    head, _, name = path.rstrip("/").rpartition("/")
    return mkdir_all(root_fd, head), name


def mountpoint(root_fd: int, path: str, is_dir: bool) -> int:
    """An O_PATH fd of the mount point for path, created as a directory or a file as needed."""
    if is_dir:
        return mkdir_all(root_fd, path)
    return ensure_file(root_fd, path)


def fd_is_dir(fd: int) -> bool:
    return stat.S_ISDIR(os.fstat(fd).st_mode)


def is_dir(path: str) -> bool:
    try:
        return stat.S_ISDIR(os.stat(path).st_mode)
    except FileNotFoundError:
        return True
