"""tmpcopyup: a new tmpfs gets a copy of what it hides (modes, owners, links, device nodes)."""

import os
import stat

from ocirun import paths


def open_dir(path_fd: int) -> int:
    """A readable fd of the directory an O_PATH fd names (it outlives a mount on top of it)."""
    return os.open(paths.fd_path(path_fd), os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)


def copy_up(below: int, dest: str, root_fd: int) -> None:
    """tmpcopyup: copy what the new tmpfs hides into it, with modes, owners and links."""
    top = paths.open_in_root(root_fd, dest, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        st = os.fstat(below)
        os.fchown(top, st.st_uid, st.st_gid)
        os.fchmod(top, stat.S_IMODE(st.st_mode))
        _copy_entries(below, top)
    finally:
        os.close(below)
        os.close(top)


def _copy_entries(src: int, dst: int) -> None:
    for entry in os.scandir(src):
        name, st = entry.name, entry.stat(follow_symlinks=False)
        if stat.S_ISDIR(st.st_mode):
            os.mkdir(name, 0o700, dir_fd=dst)
            flags = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
            sub_src, sub_dst = os.open(name, flags, dir_fd=src), os.open(name, flags, dir_fd=dst)
            try:
                _copy_entries(sub_src, sub_dst)
            finally:
                os.close(sub_src)
                os.close(sub_dst)
        elif stat.S_ISLNK(st.st_mode):
            os.symlink(os.readlink(name, dir_fd=src), name, dir_fd=dst)
        elif stat.S_ISREG(st.st_mode):
            _copy_file(name, src, dst)
        else:  # devices, fifos, sockets
            os.mknod(name, st.st_mode, st.st_rdev, dir_fd=dst)
        os.chown(name, st.st_uid, st.st_gid, dir_fd=dst, follow_symlinks=False)
        if not stat.S_ISLNK(st.st_mode):
            os.chmod(name, stat.S_IMODE(st.st_mode), dir_fd=dst)


def _copy_file(name: str, src: int, dst: int) -> None:
    fd_in = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=src)
    try:
        fd_out = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600,
                         dir_fd=dst)  # fmt: skip
        try:
            while os.sendfile(fd_out, fd_in, None, 1 << 20):
                pass
        finally:
            os.close(fd_out)
    finally:
        os.close(fd_in)
