"""The container lifecycle: create, start, kill, delete (and run, which strings them together)."""

import os
import time

from ocirun import OCI_VERSION, hooks
from ocirun import config as cfg
from ocirun.channel import Channel
from ocirun.errors import ContainerExists, InvalidState, OcirunError, SetupError
from ocirun.log import log
from ocirun.state import (
    CREATED,
    CREATING,
    EXEC_FIFO,
    PAUSED,
    RUNNING,
    STATE_FILE,
    STOPPED,
    Container,
    Lock,
    check_id,
    locked,
    proc_stat,
    rfc3339_now,
)  # fmt: skip


class CreateOptions:
    """The flags of `create` (and `run`)."""

    def __init__(self, bundle: str = ".", pid_file: str | None = None,
                 console_socket: str | None = None, no_pivot: bool = False,
                 preserve_fds: int = 0, new_keyring: bool = True) -> None:  # fmt: skip
        self.bundle = os.path.abspath(bundle)
        self.pid_file = pid_file
        self.console_socket = console_socket
        self.no_pivot = no_pivot
        self.preserve_fds = preserve_fds
        self.new_keyring = new_keyring


def create(root: str, container_id: str, opts: CreateOptions, keep_lock: bool = False):
    """Build the container up to where only `start` is missing; return it (and its lock)."""
    from ocirun import cgroups, security  # (security loads ctypes: not for start, kill, delete)

    check_id(container_id)
    config = cfg.load(opts.bundle)
    cfg.check(config, opts.bundle)
    security.check(config["process"])
    cgroup = cgroups.manager_for(config.get("linux", {}).get("cgroupsPath"), container_id)
    os.makedirs(root, 0o700, exist_ok=True)
    state_dir = os.path.join(root, container_id)
    try:
        os.mkdir(state_dir, 0o711)
    except FileExistsError:
        raise ContainerExists(f"container with id exists: {container_id}") from None
    lock = Lock(state_dir).__enter__()
    builder = _Builder(container_id, config, opts, state_dir, cgroup, lock.fd)
    try:
        container = builder.build(root)
    except BaseException as exc:
        builder.tear_down()
        lock.release()
        if isinstance(exc, OSError):
            raise SetupError(str(exc)) from None
        raise
    if keep_lock:
        return container, lock
    lock.release()
    return container


class _Builder:
    """The steps of `create`, and the undoing of whatever of them was done when one fails."""

    def __init__(self, container_id: str, config: dict, opts: CreateOptions, state_dir: str,
                 cgroup, lock_fd: int) -> None:  # fmt: skip
        self.id = container_id
        self.lock_fd = lock_fd
        self.config = config
        self.opts = opts
        self.state_dir = state_dir
        self.cgroup = cgroup
        self.rootfs = cfg.rootfs_path(config, opts.bundle)
        self.init_pid = 0
        self.host_mounts: list[str] = []
        self.cgroup_created = False

    def hook_state(self, status: str) -> dict:
        state = {"ociVersion": OCI_VERSION, "id": self.id, "status": status, "pid": self.init_pid,
                 "bundle": self.opts.bundle}  # fmt: skip
        if self.config.get("annotations"):
            state["annotations"] = self.config["annotations"]
        return state

    def build(self, root: str) -> Container:
        from ocirun.init import Plan, fork_stage1

        os.mkfifo(os.path.join(self.state_dir, EXEC_FIFO), 0o622)
        self.cgroup.create()
        self.cgroup_created = True
        self.cgroup.apply(self.config.get("linux", {}).get("resources") or {})
        console_fd = self._console_fd()
        state_dir_fd = os.open(self.state_dir, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        plan = Plan(self.config, self.opts.bundle, self.rootfs, state_dir_fd, self.opts.no_pivot,
                    self.opts.preserve_fds, console_fd, self._cgroup_sources(),
                    self.hook_state(CREATING), self.lock_fd,
                    new_keyring=self.opts.new_keyring)  # fmt: skip
        channel = Channel()
        try:
            stage1 = fork_stage1(plan, channel)
            channel.as_parent()
            self._converse(channel, stage1)
        finally:
            channel.close()
            os.close(state_dir_fd)
            if console_fd >= 0:
                os.close(console_fd)
        return self._record(root)

    def _cgroup_sources(self):
        mounts = self.config.get("mounts", [])
        if any(m.get("type") in ("cgroup", "cgroup2") for m in mounts):
            return self.cgroup.mount_sources()
        return []

    def _console_fd(self) -> int:
        if not self.config["process"].get("terminal"):
            return -1
        from ocirun import terminal

        return terminal.connect(self.opts.console_socket)

    def _converse(self, channel: Channel, stage1: int) -> None:
        """Answer the children's requests until the init reports ready (or an error)."""
        from ocirun import namespaces

        linux = self.config.get("linux", {})
        try:
            while True:
                word, _, rest = channel.receive().partition(" ")
                if word == "userns":
                    namespaces.write_id_mappings(stage1, linux)
                    channel.send("go")
                elif word == "pid":
                    self.init_pid = int(rest)
                    channel.send("go")
                    self.cgroup.add(self.init_pid)  # while the init mounts; done before "hooks"
                elif word == "cgroup":  # the init is in its cgroup (added at "pid")
                    channel.send("go")
                elif word == "mount":
                    self.host_mounts.append(rest)
                elif word == "hooks":
                    if linux.get("netDevices"):
                        from ocirun import netdevices

                        netdevices.move(linux["netDevices"], self.init_pid)
                    hooks.run(self.config, "prestart", self.hook_state(CREATING))
                    hooks.run(self.config, "createRuntime", self.hook_state(CREATING))
                    channel.send("go")
                elif word == "ready":
                    return
                elif word == "error":
                    raise SetupError(rest)
        finally:
            os.waitpid(stage1, 0)

    def _record(self, root: str) -> Container:
        stat = proc_stat(self.init_pid)
        if stat is None or stat[0] in "ZX":
            raise SetupError("container init exited during setup")
        data = {
            "id": self.id, "pid": self.init_pid, "init_start_time": stat[1],
            "bundle": self.opts.bundle, "rootfs": self.rootfs, "created": rfc3339_now(),
            "cgroup_path": self.cgroup.path, "host_mounts": self.host_mounts,
            "config": self.config,
        }  # fmt: skip
        container = Container(root, self.id, data)
        container.save()
        if self.opts.pid_file:
            write_pid_file(self.opts.pid_file, self.init_pid)
        return container

    def tear_down(self) -> None:
        """Undo a failed create: the init, host mounts, cgroup, state dir; then poststop hooks."""
        if self.init_pid:
            kill_and_wait(self.init_pid)
        unmount_all(self.host_mounts)
        if self.cgroup_created:
            destroy_cgroup(self.cgroup)
        remove_state_dir(self.state_dir)
        hooks.run_all_logged(self.config, "poststop", self.hook_state(STOPPED))


def write_pid_file(path: str, pid: int) -> None:
    """Write the pid atomically (a temporary file renamed into place), as runc does."""
    path = os.path.abspath(path)
    tmp = os.path.join(os.path.dirname(path), f".{os.path.basename(path)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
    try:
        os.write(fd, str(pid).encode())
    finally:
        os.close(fd)
    os.rename(tmp, path)


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


def start(root: str, container_id: str) -> Container:
    lock, container = locked(root, container_id)
    with lock:
        status = container.status()
        if status != CREATED:
            raise InvalidState(f"cannot start a container that is {status}: {container_id}")
        _release_init(container)
    _poststart(container)
    return container


def _release_init(container: Container) -> None:
    """Open the exec fifo for reading: the init, blocked opening it for writing, goes on."""
    import select

    fd = os.open(container.exec_fifo, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        poller = select.poll()
        poller.register(fd, select.POLLIN)
        data = b""
        while True:
            if poller.poll(50):
                chunk = os.read(fd, 4096)
                if not chunk:
                    break
                data += chunk
            elif not container.init_alive():
                raise SetupError("container init exited before start")
    finally:
        os.close(fd)
    os.unlink(container.exec_fifo)
    if data != b"0":
        destroy(container, CREATED)  # a failed startContainer hook: on to step 12 of the lifecycle
        raise SetupError(data.decode(errors="replace").removeprefix("error "))


def _poststart(container: Container) -> None:
    if not hooks.has(container.config, "poststart"):
        return
    try:
        hooks.run(container.config, "poststart", container.oci_state(RUNNING))
    except OcirunError:
        destroy(container, RUNNING)  # a failed poststart hook: on to step 12 of the lifecycle
        raise


def kill(root: str, container_id: str, signal: int, all_processes: bool = False) -> None:
    container = Container.load(root, container_id)
    status = container.status()
    if status not in (CREATED, RUNNING, PAUSED) and not all_processes:
        raise InvalidState(f"container not running: {container_id}")
    if all_processes:
        pids = container.cgroup().pids()
        for pid in pids:
            _signal(pid, signal)
        if status == PAUSED and signal == 9:
            container.cgroup().thaw()
        return
    _signal(container.pid, signal)


def _signal(pid: int, signal: int) -> None:
    try:
        os.kill(pid, signal)
    except ProcessLookupError:
        pass


def delete(root: str, container_id: str, force: bool = False) -> None:
    try:
        lock, container = locked(root, container_id)
    except OcirunError:
        if force:
            _remove_unfinished(root, container_id)
            return
        raise
    with lock:
        status = container.status()
        if status in (RUNNING, PAUSED) and not force:
            raise InvalidState(
                f"cannot delete container {container_id} that is not stopped: {status}"
            )
        destroy(container, status)


def _remove_unfinished(root: str, container_id: str) -> None:
    """The state dir of a create that was killed before it wrote state.json (under the lock,
    so never one still being created): without it the id could not be used again."""
    state_dir = os.path.join(root, check_id(container_id))
    try:
        with Lock(state_dir):
            if not os.path.exists(os.path.join(state_dir, STATE_FILE)):
                remove_state_dir(state_dir)
    except OcirunError:
        pass  # no such container at all


def destroy(container: Container, status: str) -> None:
    """Step 12 of the lifecycle: undo create; then the poststop hooks (step 13)."""
    cgroup = container.cgroup()
    if status != STOPPED:
        if status == PAUSED:
            cgroup.thaw()
        kill_and_wait(container.pid)
    for pid in cgroup.pids():
        kill_and_wait(pid)
    unmount_all(container.data.get("host_mounts", []))
    destroy_cgroup(cgroup)
    remove_state_dir(container.dir)
    hooks.run_all_logged(container.config, "poststop", container.oci_state(STOPPED))
