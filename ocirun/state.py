"""Container state on disk: a directory per container under the root, holding state.json.

Status is derived, never stored (as runc does): init gone, a zombie, or its start time changed
(pid reuse) → stopped; cgroup frozen → paused; exec fifo still present → created; else running.
"""

import posix  # not os, whose import (stat, posixpath, _collections_abc) costs ~2 ms per command
import time

from ocirun import OCI_VERSION, jsonio
from ocirun.errors import ContainerNotFound, CorruptState, UsageError

STATE_FILE = "state.json"
# what a create still under way has made (pid, cgroup, host mounts), for `delete --force` to
# undo should that create be killed before it writes state.json
PROGRESS_FILE = "progress.json"
EXEC_FIFO = "exec.fifo"

CREATING, CREATED, RUNNING, PAUSED, STOPPED = "creating", "created", "running", "paused", "stopped"

# what the commands read from state.json, and its type (ocirun writes all of them)
_STATE_FIELDS = {
    "pid": int, "init_start_time": int, "bundle": str, "rootfs": str, "created": str,
    "cgroup_path": str, "freezer": str, "host_mounts": list, "config": dict,
}  # fmt: skip
_ID_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_+-.")


def check_id(container_id: str) -> str:
    """Refuse ids that are empty, path-like or outside runc's alphabet [A-Za-z0-9_+-.]."""
    if not container_id or container_id in (".", "..") or not _ID_CHARS.issuperset(container_id):
        raise UsageError(
            f"invalid container id {container_id!r}: use letters, digits and _ + - . only"
        )
    return container_id


def join(directory: str, name: str) -> str:
    """os.path.join for a name that is never absolute (an id or one of our file names)."""
    return f"{directory}/{name}" if directory and not directory.endswith("/") else directory + name


def exists(path: str) -> bool:
    try:
        posix.stat(path)
    except (OSError, ValueError):
        return False
    return True


def proc_stat(pid: int) -> tuple[str, int] | None:
    """(state letter, start time in clock ticks) of a process, or None when it does not exist."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except OSError:
        return None
    fields = data[data.rindex(b")") + 2 :].split()
    return fields[0].decode(), int(fields[19])


def rfc3339_now() -> str:
    ns = time.time_ns()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ns // 10**9)) + f".{ns % 10**9:09d}Z"


class Container:
    """A container as recorded under the state root."""

    def __init__(self, root: str, container_id: str, data: dict) -> None:
        self.root = root
        self.id = container_id
        self.dir = join(root, container_id)
        self.data = data

    @classmethod
    def load(cls, root: str, container_id: str) -> "Container":
        check_id(container_id)
        try:
            data = jsonio.load_object(join(join(root, container_id), STATE_FILE))
        except FileNotFoundError:
            raise ContainerNotFound(f"container does not exist: {container_id}") from None
        except (OSError, ValueError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) else exc
            raise CorruptState(f"container {container_id}: {STATE_FILE}: {reason}") from None
        for key, kind in _STATE_FIELDS.items():
            if type(data.get(key)) is not kind:
                raise CorruptState(
                    f"container {container_id}: {STATE_FILE}: {key}: missing or not {kind.__name__}"
                )
        return cls(root, container_id, data)

    @property
    def pid(self) -> int:
        return self.data["pid"]

    @property
    def config(self) -> dict:
        return self.data["config"]

    @property
    def bundle(self) -> str:
        return self.data["bundle"]

    @property
    def exec_fifo(self) -> str:
        return join(self.dir, EXEC_FIFO)

    def init_alive(self) -> bool:
        """Whether the init recorded at create still runs (not a zombie, its pid not reused)."""
        if not self.pid:
            return False
        stat = proc_stat(self.pid)
        return stat is not None and stat[0] not in "ZX" and stat[1] == self.data["init_start_time"]

    def status(self) -> str:
        if not self.init_alive():
            return STOPPED
        from ocirun.cgroups.frozen import is_frozen  # not the whole driver: see that module

        if is_frozen(self.data["freezer"]):
            return PAUSED
        if exists(self.exec_fifo):
            return CREATED
        return RUNNING

    def cgroup(self):
        from ocirun import cgroups

        return cgroups.open_existing(self.data["cgroup_path"])

    def oci_state(self, status: str | None = None) -> dict:
        """The spec's state object plus runc's rootfs, created and owner fields."""
        status = status or self.status()
        state = {
            "ociVersion": OCI_VERSION,
            "id": self.id,
            "pid": self.pid if status != STOPPED else 0,
            "status": status,
            "bundle": self.bundle,
            "rootfs": self.data["rootfs"],
            "created": self.data["created"],
            "owner": "",
        }
        annotations = self.config.get("annotations")
        if annotations:
            state["annotations"] = annotations
        return state

    def save(self) -> None:
        """Write state.json (atomically)."""
        write_atomically(join(self.dir, STATE_FILE), jsonio.dumps(self.data), 0o600)


class Lock:
    """An exclusive flock on a state directory: commands on one id never interleave."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.fd = -1

    def __enter__(self) -> "Lock":
        if self.fd >= 0:  # already held (taken by locked())
            return self
        try:
            self.fd = posix.open(self.path, posix.O_RDONLY | posix.O_DIRECTORY | posix.O_CLOEXEC)
        except FileNotFoundError:
            raise ContainerNotFound(
                f"container does not exist: {self.path.rpartition('/')[2]}"
            ) from None
        import fcntl  # not needed by `state` and `list`, which never lock

        fcntl.flock(self.fd, fcntl.LOCK_EX)
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()

    def release(self) -> None:
        if self.fd >= 0:
            posix.close(self.fd)
            self.fd = -1


def locked(root: str, container_id: str) -> tuple[Lock, Container]:
    """Take the container's lock, then load its state (which may have changed while waiting)."""
    lock = Lock(join(root, check_id(container_id))).__enter__()
    try:
        return lock, Container.load(root, container_id)
    except BaseException:
        lock.release()
        raise


def write_atomically(path: str, text: str, mode: int) -> None:
    """A temporary file next to path, renamed over it: readers see the old or the new file."""
    directory, _, name = path.rpartition("/")
    tmp = f"{directory}/.{name}.tmp"
    fd = posix.open(tmp, posix.O_WRONLY | posix.O_CREAT | posix.O_TRUNC | posix.O_CLOEXEC, mode)
    try:
        posix.write(fd, text.encode())
    finally:
        posix.close(fd)
    posix.rename(tmp, path)


def write_pid_file(path: str, pid: int) -> None:
    """--pid-file of create and exec: written atomically, as runc does."""
    import os  # (create and exec have loaded it already)

    write_atomically(os.path.abspath(path), str(pid), 0o644)


def list_ids(root: str) -> list[str]:
    try:
        names = posix.listdir(root)
    except FileNotFoundError:
        return []
    return sorted(n for n in names if exists(join(join(root, n), STATE_FILE)))
