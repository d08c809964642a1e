"""The container's init, from its birth in its namespaces and cgroup up to execve.

It joins its cgroup (cgroups.Entry), mounts the rootfs and the config's mounts (rootfs.py),
[the parent runs the prestart and createRuntime hooks], makes /dev, runs the createContainer
hooks, sets hostname and sysctls, enters the rootfs (pivot_root, in rootfs.Rootfs.enter),
masks paths, finds the program, reports READY and blocks opening the exec fifo until
`ocirun start` opens it; then the startContainer hooks, process security, execve
(process/program.py). The messages are in process/protocol.py. What the init (and stage 1)
need is prepared by the parent before it forks: the Plan.
"""

import os

from ocirun import hooks, procfs, rootless, security
from ocirun import syscalls as sc
from ocirun.config import Config
from ocirun.errors import SetupError
from ocirun.log import log
from ocirun.namespaces import NAMESPACE_FLAGS
from ocirun.process import program
from ocirun.process.protocol import CGROUP, ERROR, HOOKS, MOUNT, READY, Channel, describe
from ocirun.rootfs import Rootfs
from ocirun.state import EXEC_FIFO


class Plan:
    """Everything the forked stages need, prepared by the parent before forking."""

    def __init__(self, spec: Config, bundle: str, rootfs: str, state_dir_fd: int,
                 no_pivot: bool, preserve_fds: int, console_fd: int = -1,
                 cgroup_sources=None, hook_state=None, lock_fd: int = -1,
                 new_keyring: bool = True, cgroup_entry=None) -> None:  # fmt: skip
        self.spec = spec
        self.config = spec.data  # the dict, for hooks and Rootfs
        self.linux = spec.linux
        self.process = spec.process
        self.namespaces = spec.namespaces
        self.bundle = bundle
        self.rootfs = rootfs
        self.state_dir_fd = state_dir_fd
        self.no_pivot = no_pivot
        self.preserve_fds = preserve_fds
        self.console_fd = console_fd
        self.cgroup_sources = cgroup_sources or []
        self.cgroup_entry = cgroup_entry  # cgroups.Entry: the init joins its cgroup by itself
        self.hook_state = hook_state or {}
        self.idmap_trees: dict[int, int] = {}  # mount index -> detached idmapped tree (stage 1)
        self.umask = os.umask(0)  # the caller's, kept when process.user.umask is not given
        os.umask(self.umask)
        self.new_keyring = new_keyring  # a session keyring of its own (runc's "_ses.<id>")
        self.lock_fd = lock_fd  # the parent's lock on the state dir: the children must not hold it
        self.in_userns = rootless.in_user_namespace()  # ocirun's own: no mknod there either


def run(plan: Plan, channel: Channel, via_stage1: bool) -> None:
    """The init's steps, in order; ends in execve (or exits when start finds an error)."""
    log.debug("child process in init(): the init, in the container's namespaces")
    entry = plan.cgroup_entry
    entry.join_v1()  # all but memory, which waits for the end of the setup (see cgroups.Entry)
    os.setsid()
    if plan.new_keyring:
        _join_new_session_keyring(f"_ses.{plan.hook_state['id']}")
    os.umask(0)
    spec, ns = plan.spec, plan.namespaces
    if spec.new_namespace("network"):
        sc.interface_up("lo")
    host_mounts = "mount" not in ns  # the config's mounts land in the host's namespace
    if via_stage1 and host_mounts:
        channel.wait_go()  # PID's answer, before the GO that each host mount waits for
    rootfs = Rootfs(plan.config, plan.bundle, plan.rootfs, new_mountns=not host_mounts,
                    in_userns="user" in ns or plan.in_userns,
                    on_host_mount=lambda path: _announce_host_mount(channel, path),
                    idmap_trees=plan.idmap_trees)  # fmt: skip
    rootfs.prepare()
    mounts = spec.mounts
    first_cgroup = next(
        (i for i, m in enumerate(mounts) if m.get("type") in ("cgroup", "cgroup2")), len(mounts)
    )
    for i in range(first_cgroup):
        rootfs.mount(mounts[i], i)
    if via_stage1 and not host_mounts:
        # (read this late: the answer is there by now) the parent knows our pid, and has moved
        # us into the cgroup2 cgroup where stage 1 could not fork us into it
        channel.wait_go()

    if spec.new_namespace("cgroup"):
        # a cgroup namespace is rooted where we are in every hierarchy: memory too, and the
        # parent may still have to move us into the cgroup2 one
        entry.join_memory()
        channel.send(CGROUP)
        channel.wait_go()
        sc.unshare(NAMESPACE_FLAGS["cgroup"])
        rootfs.new_cgroupns = True
    for i in range(first_cgroup, len(mounts)):
        rootfs.mount(mounts[i], i, plan.cgroup_sources)
    rootfs.setup_dev()
    if _parent_hooks(plan):
        channel.send(HOOKS)  # the parent runs prestart and createRuntime: the mounts are there
        channel.wait_go()
    hooks.run(plan.config, "createContainer", _own_state(plan, "creating"), cwd=rootfs.path)
    if plan.config.get("hostname") is not None and "uts" in plan.namespaces:
        sc.sethostname(plan.config["hostname"])
    if plan.config.get("domainname") is not None and "uts" in plan.namespaces:
        sc.setdomainname(plan.config["domainname"])
    if not via_stage1:  # (else stage 1 has, before entering any namespace)
        security.write_oom_score_adj(plan.process)
    if hooks.has(plan.config, "startContainer"):
        import subprocess  # noqa: F401  (the host's Python library is out of reach after pivot)
    rootfs.enter(plan.no_pivot)
    os.makedirs(plan.process["cwd"], 0o755, exist_ok=True)  # as runc: a missing cwd is created
    _set_sysctls(plan.linux.get("sysctl") or {})  # inside: before /proc/sys turns read-only
    if plan.process.get("terminal"):  # before finalize, as runc: /dev may turn read-only there
        from ocirun import terminal

        terminal.setup_console(plan.console_fd, plan.process.get("consoleSize"))
    rootfs.finalize()
    path = program.find_program(plan.process)
    security.check_grantable(plan.process)
    security.apply_rlimits(plan.process)
    security.apply_memory_policy(plan.linux)
    entry.join_memory()
    entry.close()
    # from here on processes of the container may exist (exec): none may read or ptrace the
    # init, a host interpreter until execve, nor reach it through /proc/1/exe (CVE-2019-5736)
    sc.prctl(sc.PR_SET_DUMPABLE, 0)
    log.debug("init: closing the pipe to signal completion")
    log.close()
    channel.send(READY)
    channel.close()

    fifo = wait_for_start(plan)
    hand_over = None
    if fifo >= 0 and security.notifies(plan.linux):
        from ocirun.seccomp_agent import hand_over_through_fifo

        hand_over = hand_over_through_fifo(fifo)  # start reads the listener, then closes it
        fifo = -1

    def start_hooks() -> None:
        _run_start_container_hooks(plan, fifo)

    program.execute(path, plan.process, plan.linux, plan.preserve_fds, plan.umask, hand_over,
                    start_hooks if hooks.has(plan.config, "startContainer") else None)  # fmt: skip


def _announce_host_mount(channel: Channel, path: str) -> None:
    """Before a mount in the host's namespace: the parent records it, so that a create killed
    from here on leaves delete --force the path to unmount, and answers GO."""
    channel.send(f"{MOUNT} {path}")
    channel.wait_go()


def _parent_hooks(plan: Plan) -> bool:
    """Whether the parent has work at HOOKS (else no round trip for it)."""
    config = plan.config
    return bool(hooks.has(config, "prestart") or hooks.has(config, "createRuntime")
                or plan.linux.get("netDevices"))  # fmt: skip


def _join_new_session_keyring(name: str) -> None:
    """Keys the container adds stay its own; a kernel without keyrings is no error (as runc)."""
    try:
        sc.join_session_keyring(name)
    except OSError as exc:
        if exc.errno != 38:  # ENOSYS
            raise SetupError(f"cannot create the session keyring {name}: {exc.strerror}") from None


def _own_state(plan: Plan, status: str) -> dict:
    """The state for hooks run in the container's namespaces: the pid as the container sees it."""
    return dict(plan.hook_state, status=status, pid=os.getpid())


def _set_sysctls(sysctls: dict[str, str]) -> None:
    for key, value in sysctls.items():
        try:
            procfs.write("sys/" + key.replace(".", "/"), value)
        except OSError as exc:
            raise SetupError(f"linux.sysctl: cannot set {key}={value}: {exc.strerror}") from None


def wait_for_start(plan: Plan) -> int:
    """Block until `ocirun start` opens the exec fifo. Report "0" to it then, or return it
    while start waits for more: the startContainer hooks' outcome, or a seccomp listener."""
    fifo = os.open(EXEC_FIFO, os.O_WRONLY | os.O_CLOEXEC, dir_fd=plan.state_dir_fd)
    os.close(plan.state_dir_fd)
    if hooks.has(plan.config, "startContainer") or security.notifies(plan.linux):
        return fifo
    os.write(fifo, b"0")
    os.close(fifo)
    return -1


def _run_start_container_hooks(plan: Plan, fifo: int) -> None:
    """As runc runs them: last before execve, as the process's user, with its capabilities and
    seccomp filter. Their outcome goes to start through the fifo (when it still waits)."""
    try:
        hooks.run(plan.config, "startContainer", _own_state(plan, "created"))
    except BaseException as exc:
        if fifo >= 0:
            os.write(fifo, f"{ERROR} {describe(exc)}".encode())
        else:
            os.write(2, f"ocirun: {describe(exc)}\n".encode())
        os._exit(1)
    if fifo >= 0:
        os.write(fifo, b"0")
        os.close(fifo)
