"""The parent side of `create`: its steps up to where only `start` is missing (the lifecycle's
steps 1-5), the conversation with the stages it forks (process/protocol.py), and the undoing
of whatever was done when a step fails."""

import os

from ocirun import OCI_VERSION, cgroups, hooks, jsonio, security
from ocirun import config as cfg
from ocirun.errors import ContainerExists, SetupError
from ocirun.process import protocol
from ocirun.process.protocol import HOOKS, MOUNT, PID, READY, USERNS, Channel
from ocirun.state import (
    CREATING,
    EXEC_FIFO,
    PROGRESS_FILE,
    STOPPED,
    Container,
    Lock,
    check_id,
    proc_stat,
    rfc3339_now,
    write_atomically,
    write_pid_file,
)  # fmt: skip


class CreateOptions:
    """The flags of `create` (and `run`)."""

    def __init__(self, bundle: str = ".", pid_file: str | None = None,
                 console_socket: str | None = None, no_pivot: bool = False,
                 preserve_fds: int = 0, new_keyring: bool = True,
                 systemd_cgroup: bool = False, rootless_cgroups: bool = False) -> None:  # fmt: skip
        self.bundle = os.path.abspath(bundle)
        self.pid_file = pid_file
        self.console_socket = console_socket
        self.no_pivot = no_pivot
        self.preserve_fds = preserve_fds
        self.new_keyring = new_keyring
        self.systemd_cgroup = systemd_cgroup  # the global --systemd-cgroup
        self.rootless_cgroups = rootless_cgroups  # no cgroup where it may not make one


def create(root: str, container_id: str, opts: CreateOptions, keep_lock: bool = False):
    """Build the container up to where only `start` is missing; return it (and its lock)."""
    check_id(container_id)
    config = cfg.load(opts.bundle)
    cfg.check(config, opts.bundle)
    spec = cfg.Config(config)
    security.check(spec.process)
    cgroup = cgroups.manager_for(spec.linux.get("cgroupsPath"), container_id,
                                 opts.systemd_cgroup, spec.annotations,
                                 opts.rootless_cgroups)  # fmt: skip
    os.makedirs(root, 0o700, exist_ok=True)
    state_dir = os.path.join(root, container_id)
    try:
        os.mkdir(state_dir, 0o711)
    except FileExistsError:
        raise ContainerExists(f"container with id exists: {container_id}") from None
    lock = Lock(state_dir).__enter__()
    builder = Builder(container_id, spec, opts, state_dir, cgroup, lock.fd)
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


class Builder:
    """The steps of `create`, and the undoing of whatever of them was done when one fails."""

    def __init__(self, container_id: str, spec: cfg.Config, opts: CreateOptions,
                 state_dir: str, cgroup, lock_fd: int) -> None:  # fmt: skip
        self.id = container_id
        self.lock_fd = lock_fd
        self.spec = spec
        self.config = spec.data  # the dict, as hooks and state.json take it
        self.opts = opts
        self.state_dir = state_dir
        self.cgroup = cgroup
        self.rootfs = cfg.rootfs_path(spec.data, opts.bundle)
        self.init_pid = 0
        self.host_mounts: list[str] = []
        self.cgroup_created = False

    def hook_state(self, status: str) -> dict:
        state = {"ociVersion": OCI_VERSION, "id": self.id, "status": status, "pid": self.init_pid,
                 "bundle": self.opts.bundle}  # fmt: skip
        if self.spec.annotations:
            state["annotations"] = self.spec.annotations
        return state

    def build(self, root: str) -> Container:
        from ocirun.process.init import Plan
        from ocirun.process.stage1 import fork_init

        os.mkfifo(os.path.join(self.state_dir, EXEC_FIFO), 0o622)
        self._save_progress()
        self.cgroup.create()
        self.cgroup_created = True
        self.cgroup.apply(self.spec.linux.get("resources") or {})
        from ocirun.cgroups.delegation import delegate

        delegate(self.cgroup, self.config)
        console_fd = self._console_fd()
        state_dir_fd = os.open(self.state_dir, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        entry = self.cgroup.open_entry()
        plan = Plan(self.spec, self.opts.bundle, self.rootfs, state_dir_fd, self.opts.no_pivot,
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
        return self.cgroup.mount_sources() if self.spec.wants_cgroup_mount() else []

    def _console_fd(self) -> int:
        if not self.spec.process.get("terminal"):
            return -1
        from ocirun import terminal

        return terminal.connect(self.opts.console_socket)

    def _converse(self, channel: Channel, stage1: int, entry) -> None:
        """Answer the children's messages until the init reports READY (ERROR raises)."""
        from ocirun import namespaces

        linux = self.spec.linux
        messages = protocol.Messages(channel, protocol.CREATE_ORDER)
        try:
            while True:
                word, details = messages.next()
                if word == MOUNT:  # recorded before the init makes it
                    self.host_mounts.append(details)
                    self._save_progress()
                    channel.send(protocol.GO)
                    continue
                if word == READY:
                    return
                if word == USERNS:
                    namespaces.write_id_mappings(stage1, linux)
                elif word == PID:
                    pid, _, joined = details.partition(" ")
                    self.init_pid = int(pid)
                    self._save_progress()
                    if joined == "move":  # while the init mounts; done before its CGROUP
                        channel.send(protocol.GO)
                        entry.move_into_cgroup2(self.init_pid)
                        continue
                elif word == HOOKS:
                    if linux.get("netDevices"):
                        from ocirun import netdevices

                        netdevices.move(linux["netDevices"], self.init_pid)
                    hooks.run(self.config, "prestart", self.hook_state(CREATING))
                    hooks.run(self.config, "createRuntime", self.hook_state(CREATING))
                # (CGROUP: nothing to do, the init is in its cgroup2 cgroup since PID)
                channel.send(protocol.GO)
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
        os.unlink(os.path.join(self.state_dir, PROGRESS_FILE))
        if self.opts.pid_file:
            write_pid_file(self.opts.pid_file, self.init_pid)
        return container

    def _save_progress(self) -> None:
        """Record what there is to undo so far: a create killed before _record leaves it for
        `delete --force` (container.remove_unfinished)."""
        stat = proc_stat(self.init_pid) if self.init_pid else None
        progress = {"pid": self.init_pid, "init_start_time": stat[1] if stat else 0,
                    "cgroup_path": self.cgroup.path, "host_mounts": self.host_mounts}  # fmt: skip
        write_atomically(os.path.join(self.state_dir, PROGRESS_FILE), jsonio.dumps(progress), 0o600)

    def tear_down(self) -> None:
        """Undo a failed create: the init, host mounts, cgroup, state dir; then poststop hooks."""
        from ocirun.teardown import destroy_cgroup, kill_and_wait, remove_state_dir, unmount_all

        if self.init_pid:
            kill_and_wait(self.init_pid)
        unmount_all(self.host_mounts)
        if self.cgroup_created:
            destroy_cgroup(self.cgroup)
        remove_state_dir(self.state_dir)
        hooks.run_all_logged(self.config, "poststop", self.hook_state(STOPPED))

