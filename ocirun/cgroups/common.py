"""What both drivers share: file access, the warning helper, the Manager interface.

Everything here uses os.open/os.read/os.write on purpose: this runs on every `ocirun create`,
and the buffered io layer, `re` or `typing` would each cost more than the writes themselves.
"""

import errno
import os

from ocirun.errors import CgroupError

UINT64_MAX = (1 << 64) - 1


def warn(message: str) -> None:
    """The one exit for cgroup warnings: ocirun's log (the --log file, else stderr)."""
    from ocirun.log import log

    log.warning(message)


def read_path(path: str) -> str:
    """The whole file; raises OSError. Cgroup files are seq_files: read until end of file."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        chunks = []
        while chunk := os.read(fd, 65536):
            chunks.append(chunk)
    finally:
        os.close(fd)
    return b"".join(chunks).decode()


def read(directory: str, name: str) -> str:
    path = f"{directory}/{name}"
    try:
        return read_path(path)
    except OSError as e:
        raise CgroupError(f"cannot read {path}: {e.strerror}") from None


def read_optional(directory: str, name: str) -> str | None:
    """The file's text, or None when the kernel does not provide it."""
    path = f"{directory}/{name}"
    try:
        return read_path(path)
    except FileNotFoundError:
        return None
    except OSError as e:
        raise CgroupError(f"cannot read {path}: {e.strerror}") from None


def open_file(path: str, flags: int) -> int:
    try:
        return os.open(path, flags | os.O_CLOEXEC)
    except OSError as e:
        raise CgroupError(f"cannot open {path}: {e.strerror}") from None


def write_errno(directory: str, name: str, value: str) -> int:
    """Write value in one write(2); 0 or the errno, for the callers that retry on some errors."""
    try:
        fd = os.open(f"{directory}/{name}", os.O_WRONLY | os.O_TRUNC | os.O_CLOEXEC)
    except OSError as e:
        return e.errno or errno.EIO
    try:
        os.write(fd, value.encode())
    except OSError as e:
        return e.errno or errno.EIO
    finally:
        os.close(fd)
    return 0


def write_error(directory: str, name: str, value: str, err: int) -> CgroupError:
    message = f"cannot write {value!r} to {directory}/{name}: {os.strerror(err)}"
    if err == errno.ENOENT:
        exists = os.path.isdir(directory)
        message += " (this kernel does not provide that file)" if exists else " (no such cgroup)"
    return CgroupError(message)


def write(directory: str, name: str, value: str) -> None:
    if err := write_errno(directory, name, value):
        raise write_error(directory, name, value, err)


def mkdirs(directory: str, root: str) -> int:
    """mkdir directory and its missing parents below root; how many levels were made."""
    try:
        os.mkdir(directory, 0o755)
        return 1
    except FileExistsError:
        return 0
    except FileNotFoundError:
        parent = os.path.dirname(directory)
        if len(parent) <= len(root):
            raise CgroupError(f"cannot create {directory}: {root} does not exist") from None
    except OSError as e:
        raise CgroupError(f"cannot create {directory}: {e.strerror}") from None
    made = mkdirs(parent, root)
    try:
        os.mkdir(directory, 0o755)
    except FileExistsError:  # made meanwhile by someone else
        return made
    except OSError as e:
        raise CgroupError(f"cannot create {directory}: {e.strerror}") from None
    return made + 1


def parse_uint(text: str) -> int:
    """A cgroup number; "max" is UINT64_MAX (runc's GetCgroupParamUint)."""
    text = text.strip()
    return UINT64_MAX if text == "max" else int(text)


def key_values(text: str) -> dict[str, int]:
    """`key value` lines (memory.stat, cpu.stat, pids.events...)."""
    out = {}
    for line in text.splitlines():
        key, _, value = line.partition(" ")
        if value:
            out[key] = parse_uint(value)
    return out


def num(value: int) -> str:
    """A limit as cgroup v2 writes it: -1 is "max"."""
    return "max" if value == -1 else str(value)


def asks(section: object) -> bool:
    """Whether a resources section sets anything at all (null, [] and {} set nothing)."""
    if isinstance(section, dict):
        return any(asks(v) for v in section.values())
    if isinstance(section, list):
        return bool(section)
    return section is not None


class Manager:
    """One container's cgroup, in every hierarchy the host has. See the package docstring."""

    location: str  # where the cgroup is: mgr.path without the ";parents=" part
    parents = 0  # levels above the cgroup that create() made, for destroy() to remove again

    @property
    def path(self) -> str:
        """What open_existing() takes back: the location, and the parents create() made."""
        return f"{self.location};parents={self.parents}" if self.parents else self.location

    def create(self) -> None:
        """mkdir the cgroup (and its parents) in every hierarchy; idempotent."""
        raise NotImplementedError

    def open_entry(self) -> "Entry":
        """The doors through which a process about to be forked joins the cgroup (see Entry)."""
        raise NotImplementedError

    def apply(self, resources: dict) -> None:
        """Write linux.resources at create, runc's default device rules appended."""
        from ocirun.cgroups.devices import DEFAULT_RULES

        self.write_resources(resources, [*(resources.get("devices") or []), *DEFAULT_RULES])

    def update(self, resources: dict) -> None:
        """Change limits live (`ocirun update`); device rules stay as they are, as in runc."""
        if "devices" in resources:
            warn("update: device rules are not updated (as in runc)")
        self.write_resources(resources, None)

    def write_resources(self, resources: dict, devices: list[dict] | None) -> None:
        """What apply and update share: devices None leaves the device rules alone."""
        raise NotImplementedError

    def freeze(self) -> None:
        """Freeze every process and return once the kernel reports the cgroup frozen."""
        raise NotImplementedError

    def thaw(self) -> None:
        raise NotImplementedError

    def freezer(self) -> str:
        """Where the cgroup's freeze state is, as state.json keeps it (see cgroups.frozen)."""
        raise NotImplementedError

    def is_frozen(self) -> bool:
        from ocirun.cgroups.frozen import is_frozen

        return is_frozen(self.freezer())

    def pids(self) -> list[int]:
        """Every process in the cgroup and its sub-cgroups, sorted."""
        raise NotImplementedError

    def kill(self) -> None:
        """SIGKILL every process in the cgroup (cgroup.kill where the kernel has it)."""
        raise NotImplementedError

    def stats(self) -> dict:
        """The "data" object of runc's `events --stats` (runc 1.1 field names)."""
        raise NotImplementedError

    def destroy(self) -> None:
        """rmdir the cgroup in every hierarchy, deepest first, then the parents create() made
        while they are empty; missing directories are fine."""
        raise NotImplementedError

    def oom_notifier(self) -> "OomNotifier":
        """Something to poll() for the container's OOM kills."""
        raise NotImplementedError

    def mount_sources(self) -> list[tuple[str, str, str]]:
        """(subdirectory under the container's /sys/fs/cgroup, host directory, fstype)."""
        raise NotImplementedError


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


def _join(tasks: list[tuple[str, int]]) -> None:
    for path, fd in tasks:
        try:
            os.write(fd, b"0")
        except OSError as e:
            hint = " (empty cpuset.cpus or cpuset.mems?)" if e.errno == errno.ENOSPC else ""
            raise CgroupError(f"cannot join {path}: {e.strerror}{hint}") from None


class OomNotifier:
    """poll() its fileno() for poll_events, then call read(): the number of OOM kills since
    the last read, or None once the cgroup is gone (or, on v2, has no process left)."""

    poll_events: int

    def fileno(self) -> int:
        raise NotImplementedError

    def read(self) -> int | None:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError
