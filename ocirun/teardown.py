"""Undoing what `create` did, for a create that failed and for `delete`: the container's
processes, the mounts it made in the host's namespace, its cgroup and its state directory."""

import os
import time

from ocirun.errors import OcirunError
from ocirun.log import log
from ocirun.state import proc_stat


def kill_and_wait(pid: int, timeout: float = 10.0) -> None:
    """SIGKILL a process we may not be the parent of, and wait until it is dead."""
    try:
        os.kill(pid, 9)
    except ProcessLookupError:
        return
    try:
        os.waitpid(pid, 0)
        return
    except ChildProcessError:
        pass
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        stat = proc_stat(pid)
        if stat is None or stat[0] in "ZX":
            return
        time.sleep(0.002)


def unmount_all(mounts: list[str]) -> None:
    """Detach the host mounts, last made first; one that is gone already is fine."""
    if not mounts:
        return
    from ocirun import syscalls as sc

    for path in reversed(mounts):
        try:
            sc.umount(path, sc.MNT_DETACH)
        except OSError as exc:
            if exc.errno not in (2, 22):  # gone already, or not a mount point any more
                log.warning(f"cannot unmount {path}: {exc.strerror}")


def destroy_cgroup(cgroup) -> None:
    try:
        cgroup.destroy()
    except OcirunError as exc:
        log.warning(str(exc))


def remove_state_dir(state_dir: str) -> None:
    """The state dir holds only our own files (never mounts): remove them, then the dir."""
    for name in os.listdir(state_dir):
        os.unlink(os.path.join(state_dir, name))
    os.rmdir(state_dir)
