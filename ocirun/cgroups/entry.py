"""How the processes ocirun forks get into a cgroup without waiting for the kernel."""

import errno
import os

from ocirun.cgroups.common import open_file, write_errno, write_error
from ocirun.errors import CgroupError


class Entry:
    """Open files of a cgroup, for a process ocirun forks (an init, an exec) to get in cheaply.

    The kernel makes a move of *another* process wait for an RCU grace period (~10 ms here;
    runc pays it on every create). Two ways in skip it: in a v1 hierarchy the process writes
    "0" (the calling thread; ours have only one) to `tasks` itself, and the cgroup2 hierarchy
    takes a child as it is born, from clone3(CLONE_INTO_CGROUP) (fork()). Where that clone3
    fails, move_into_cgroup2() is the slow way, for the parent. The files were opened by
    ocirun as the host's root, and their rights go with them into a user namespace.

    A v1 memory cgroup is joined apart (join_memory): v1 leaves a page charged where it was
    first charged, so an init that joins at the end of its setup leaves the ~700 KiB of
    copy-on-write pages its Python setup dirties with ocirun's cgroup, and a container limited
    to 1 MiB can still run (runc's init needs ~2 MiB here).
    """

    def __init__(self) -> None:
        self.tasks: list[tuple[str, int]] = []  # (path, fd) of each v1 hierarchy's tasks file
        self.memory_tasks: list[tuple[str, int]] = []  # the v1 memory hierarchy's, apart
        self.cgroup2_dir = ""
        self.cgroup2_fd = -1

    def open_tasks(self, directory: str, memory: bool = False) -> None:
        path = f"{directory}/tasks"
        (self.memory_tasks if memory else self.tasks).append((path, open_file(path, os.O_WRONLY)))

    def open_cgroup2(self, directory: str) -> None:
        self.cgroup2_dir = directory
        self.cgroup2_fd = open_file(directory, os.O_DIRECTORY)

    def fork(self, clone_flags: int = 0) -> tuple[int, bool]:
        """os.fork(), the child born in the cgroup2 cgroup where the host has one, and in the
        new namespaces of clone_flags; and whether it is in that cgroup. False: the clone3
        failed, the caller itself unshared the namespaces before a plain fork (so only a
        process that may enter them passes clone_flags: stage 1), and move_into_cgroup2()
        is still to be done."""
        from ocirun import syscalls as sc

        if self.cgroup2_fd >= 0:
            try:
                return sc.fork_into(self.cgroup2_fd, clone_flags), True
            except OSError:  # a kernel before 5.7, or a user namespace without rights here
                pass
        if clone_flags:
            sc.unshare(clone_flags)
        return os.fork(), self.cgroup2_fd < 0

    def join_v1(self) -> None:
        """Move the calling (single-threaded) process into every v1 hierarchy's cgroup but
        the memory one's."""
        _join(self.tasks)

    def join_memory(self) -> None:
        """Then into the v1 memory cgroup, if the host has one."""
        _join(self.memory_tasks)

    def move_into_cgroup2(self, pid: int) -> None:
        """The slow way in, for a process already born."""
        if err := write_errno(self.cgroup2_dir, "cgroup.procs", str(pid)):
            error = write_error(self.cgroup2_dir, "cgroup.procs", str(pid), err)
            if err == errno.EBUSY:  # the v2 "no internal processes" rule
                error = CgroupError(
                    f"{error} (controllers are enabled in its cgroup.subtree_control)"
                )
            raise error

    def close(self) -> None:
        for _, fd in [*self.tasks, *self.memory_tasks]:
            os.close(fd)
        if self.cgroup2_fd >= 0:
            os.close(self.cgroup2_fd)
        self.tasks, self.memory_tasks, self.cgroup2_fd = [], [], -1


class MovingEntry(Entry):
    """For `exec --cgroup`: the child is forked where ocirun is, and the parent moves it by pid
    (move_into_cgroup2, called where clone3 did not place it) into the given cgroup of every
    hierarchy, sub-cgroups of the container's that ocirun neither made nor opened before."""

    def __init__(self, directories: list[str]) -> None:
        super().__init__()
        self.directories = directories

    def fork(self, clone_flags: int = 0) -> tuple[int, bool]:
        from ocirun import syscalls as sc

        if clone_flags:
            sc.unshare(clone_flags)
        return os.fork(), False

    def move_into_cgroup2(self, pid: int) -> None:
        """Into every hierarchy's cgroup, not only the cgroup2 one."""
        for directory in self.directories:
            if err := write_errno(directory, "cgroup.procs", str(pid)):
                reason = os.strerror(err)
                reason = reason[:1].lower() + reason[1:]  # as runc words it
                raise CgroupError(
                    f"error adding pid {pid} to cgroups: {directory}/cgroup.procs: {reason}"
                )


def _join(tasks: list[tuple[str, int]]) -> None:
    for path, fd in tasks:
        try:
            os.write(fd, b"0")
        except OSError as e:
            hint = " (empty cpuset.cpus or cpuset.mems?)" if e.errno == errno.ENOSPC else ""
            raise CgroupError(f"cannot join {path}: {e.strerror}{hint}") from None
