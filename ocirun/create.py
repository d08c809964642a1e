"""`create`: build a container up to where only `start` is missing (the lifecycle's steps 1-5)."""

import os

from ocirun import OCI_VERSION, hooks
from ocirun import config as cfg
from ocirun.channel import Channel
from ocirun.errors import ContainerExists, SetupError
from ocirun.state import (
    CREATING,
    EXEC_FIFO,
    STOPPED,
    Container,
    Lock,
    check_id,
    proc_stat,
    rfc3339_now,
)  # fmt: skip


class CreateOptions:
    """The flags of `create` (and `run`)."""

    def __init__(self, bundle: str = ".", pid_file: str | None = None,
                 console_socket: str | None = None, no_pivot: bool = False,
                 preserve_fds: int = 0, new_keyring: bool = True,
                 rootless_cgroups: bool = False) -> None:  # fmt: skip
        self.bundle = os.path.abspath(bundle)
        self.pid_file = pid_file
        self.console_socket = console_socket
        self.no_pivot = no_pivot
        self.preserve_fds = preserve_fds
        self.new_keyring = new_keyring
        self.rootless_cgroups = rootless_cgroups  # no cgroup where it may not make one


def create(root: str, container_id: str, opts: CreateOptions, keep_lock: bool = False):
    """Build the container up to where only `start` is missing; return it (and its lock)."""
    from ocirun import cgroups, security  # (security loads ctypes: not for start, kill, delete)

    check_id(container_id)
    config = cfg.load(opts.bundle)
    cfg.check(config, opts.bundle)
    security.check(config["process"])
    cgroup = cgroups.manager_for(config.get("linux", {}).get("cgroupsPath"), container_id,
                                 opts.rootless_cgroups)  # fmt: skip
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
        from ocirun.init import Plan, fork_init

        os.mkfifo(os.path.join(self.state_dir, EXEC_FIFO), 0o622)
        self.cgroup.create()
        self.cgroup_created = True
        self.cgroup.apply(self.config.get("linux", {}).get("resources") or {})
        console_fd = self._console_fd()
        state_dir_fd = os.open(self.state_dir, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        entry = self.cgroup.open_entry()
        plan = Plan(self.config, self.opts.bundle, self.rootfs, state_dir_fd, self.opts.no_pivot,
                    self.opts.preserve_fds, console_fd, self._cgroup_sources(),
                    self.hook_state(CREATING), self.lock_fd,
                    new_keyring=self.opts.new_keyring, cgroup_entry=entry)  # fmt: skip
        channel = Channel()
        try:
            self.init_pid, stage1 = fork_init(plan, channel)
            channel.as_parent()
            self._converse(channel, stage1, entry)
        finally:
            channel.close()
            entry.close()
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

    def _converse(self, channel: Channel, stage1: int, entry) -> None:
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
                    pid, _, joined = rest.partition(" ")
                    self.init_pid = int(pid)
                    channel.send("go")
                    if joined == "move":  # while the init mounts; done before "hooks"
                        entry.move_into_cgroup2(self.init_pid)
                elif word == "cgroup":  # the init is in its cgroup (moved at "pid")
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
        except BaseException:
            if stage1:  # it may be waiting for our answer: waiting for it would hang
                os.kill(stage1, 9)
            raise
        finally:
            if stage1:  # (a directly forked init is left alone: it is the container)
                os.waitpid(stage1, 0)

    def _record(self, root: str) -> Container:
        stat = proc_stat(self.init_pid)
        if stat is None or stat[0] in "ZX":
            raise SetupError("container init exited during setup")
        data = {
            "id": self.id, "pid": self.init_pid, "init_start_time": stat[1],
            "bundle": self.opts.bundle, "rootfs": self.rootfs, "created": rfc3339_now(),
            "cgroup_path": self.cgroup.path, "freezer": self.cgroup.freezer(),
            "host_mounts": self.host_mounts,
            "config": self.config,
        }  # fmt: skip
        container = Container(root, self.id, data)
        container.save()
        if self.opts.pid_file:
            write_pid_file(self.opts.pid_file, self.init_pid)
        return container

    def tear_down(self) -> None:
        """Undo a failed create: the init, host mounts, cgroup, state dir; then poststop hooks."""
        from ocirun.container import destroy_cgroup, kill_and_wait, remove_state_dir, unmount_all

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
