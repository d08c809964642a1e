"""The container's init: the processes `ocirun create` forks, and what each does before exec.

    ocirun create ──fork──> stage 1: user namespace, join namespaces by path, unshare the rest
                               └──fork──> stage 2 (the init, PID 1 of a new pid namespace):
                                          joins its cgroup (cgroups.Entry), mounts, /dev,
                                          [parent: hooks], pivot_root,
                                          "ready" → blocks on the exec fifo until `ocirun start`
                                          → startContainer hooks, process security, execve

Where every namespace is new and none is a user or time namespace (runc's default config,
containerd's without a network path), one clone3 makes the init in all of them and stage 1 is
skipped (fork_init): one process less to fork, fault in and wait for. Either way no ocirun
process waits for the init: when `ocirun create` (or stage 1) exits, the init is re-parented
to the caller's subreaper (containerd's shim, conmon).
"""

import gc
import os

from ocirun import hooks, namespaces, procfs, security
from ocirun import syscalls as sc
from ocirun.channel import Channel, describe, run_child
from ocirun.config import NAMESPACE_FLAGS
from ocirun.errors import SetupError
from ocirun.rootfs import Rootfs

EXEC_FIFO = "exec.fifo"
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


class Plan:
    """Everything the forked stages need, prepared by the parent before forking."""

    def __init__(self, config: dict, bundle: str, rootfs: str, state_dir_fd: int,
                 no_pivot: bool, preserve_fds: int, console_fd: int = -1,
                 cgroup_sources=None, hook_state=None, lock_fd: int = -1,
                 new_keyring: bool = True, cgroup_entry=None) -> None:  # fmt: skip
        self.config = config
        self.linux = config.get("linux", {})
        self.process = config["process"]
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
        self.namespaces = {ns["type"]: ns.get("path") for ns in self.linux.get("namespaces", [])}


def fork_init(plan: Plan, channel: Channel) -> tuple[int, int]:
    """Fork the init; return (its pid, 0), or (0, stage 1's pid) where stage 1 forks it and
    reports its pid. Runs in the parent, which keeps its own namespaces either way."""
    _give_exec_fifo_to_container(plan)
    gc.freeze()  # keep the children from dirtying (and being charged for) the parent's objects
    if _can_fork_directly(plan):
        flags = namespaces.unshare_flags(plan.namespaces, exclude=("cgroup",))
        try:
            pid = sc.fork_into(plan.cgroup_entry.cgroup2_fd, flags)
        except OSError:  # no clone3 here: the long way, through stage 1
            pass
        else:
            if pid:
                return pid, 0
            _in_child(plan, channel, stage2, plan, channel, False)
    pid = os.fork()
    if pid:
        return 0, pid
    _in_child(plan, channel, stage1, plan, channel)


def _can_fork_directly(plan: Plan) -> bool:
    """Whether one clone3 can make the init with all its namespaces: every namespace is new,
    none of them a user or time namespace (their maps and offsets must be written between
    creating them and entering them), and no mount wants an idmap (made by stage 1)."""
    ns = plan.namespaces
    return (all(path is None for path in ns.values()) and "user" not in ns
            and "time" not in ns and not _wants_idmap(plan.config))  # fmt: skip


def _in_child(plan: Plan, channel: Channel, function, *args) -> None:
    gc.disable()
    if plan.lock_fd >= 0:
        os.close(plan.lock_fd)
    run_child(channel.as_child(), function, *args)


def _give_exec_fifo_to_container(plan: Plan) -> None:
    """The init may run as a uid of a user namespace: let it write the fifo (as runc does)."""
    os.chmod(EXEC_FIFO, 0o622, dir_fd=plan.state_dir_fd)
    if "user" in plan.namespaces:
        uid = namespaces.host_id(plan.linux.get("uidMappings", []), 0)
        gid = namespaces.host_id(plan.linux.get("gidMappings", []), 0)
        os.chown(EXEC_FIFO, uid, gid, dir_fd=plan.state_dir_fd)


def stage1(plan: Plan, channel: Channel) -> None:
    ns = plan.namespaces
    if _wants_idmap(plan.config):
        from ocirun import idmap

        plan.idmap_trees = idmap.prepare(plan.config, plan.bundle)  # still the host's root here
    fds = namespaces.open_paths(ns)
    namespaces.join(fds, ns, only=("user",))
    if "user" in ns and ns["user"] is None:
        sc.unshare(NAMESPACE_FLAGS["user"])
        channel.send("userns")
        channel.receive()  # the parent has written our uid_map and gid_map
    namespaces.join(fds, ns, only=tuple(fds))
    sc.unshare(namespaces.unshare_flags(ns, exclude=("user", "cgroup", "pid")))
    if plan.linux.get("timeOffsets"):
        # before the uid change below: that makes us non-dumpable, and /proc/self/* then
        # belongs to the host's root, whose file we could not open any more
        namespaces.write_time_offsets(plan.linux["timeOffsets"])
    if "user" in ns:
        os.setresgid(0, 0, 0)
        os.setresuid(0, 0, 0)
    # a new pid namespace comes with the fork: a failed clone3 into a pid namespace unshared
    # before would leave it unable to have an init (every later fork there fails, ENOMEM)
    new_pid_ns = NAMESPACE_FLAGS["pid"] if "pid" in ns and ns["pid"] is None else 0
    pid, joined = plan.cgroup_entry.fork(new_pid_ns)
    if pid == 0:
        run_child(channel, stage2, plan, channel, True)
    channel.send(f"pid {pid} {'joined' if joined else 'move'}")


def _wants_idmap(config: dict) -> bool:
    """Whether a mount asks for an idmap (without parsing every mount's options)."""
    for entry in config.get("mounts", []):
        options = entry.get("options", ())
        if entry.get("uidMappings") or entry.get("gidMappings"):
            return True
        if "idmap" in options or "ridmap" in options:
            return True
    return False


def stage2(plan: Plan, channel: Channel, via_stage1: bool) -> None:
    entry = plan.cgroup_entry
    entry.join_v1()  # all but memory, which waits for the end of the setup (see cgroups.Entry)
    os.setsid()
    if plan.new_keyring:
        _join_new_session_keyring(f"_ses.{plan.hook_state['id']}")
    os.umask(0)
    ns = plan.namespaces
    if "network" in ns and ns["network"] is None:
        sc.interface_up("lo")
    rootfs = Rootfs(plan.config, plan.bundle, plan.rootfs, new_mountns="mount" in ns,
                    in_userns="user" in ns,
                    on_host_mount=lambda path: channel.send(f"mount {path}"),
                    idmap_trees=plan.idmap_trees)  # fmt: skip
    rootfs.prepare()
    mounts = plan.config.get("mounts", [])
    first_cgroup = next(
        (i for i, m in enumerate(mounts) if m.get("type") in ("cgroup", "cgroup2")), len(mounts)
    )
    for i in range(first_cgroup):
        rootfs.mount(mounts[i], i)
    if via_stage1:
        # (read this late: the answer is there by now) the parent knows our pid, and has moved
        # us into the cgroup2 cgroup where stage 1 could not fork us into it
        channel.receive()

    if "cgroup" in ns and ns["cgroup"] is None:
        # a cgroup namespace is rooted where we are in every hierarchy: memory too, and the
        # parent may still have to move us into the cgroup2 one
        entry.join_memory()
        channel.send("cgroup")
        channel.receive()
        sc.unshare(NAMESPACE_FLAGS["cgroup"])
        rootfs.new_cgroupns = True
    for i in range(first_cgroup, len(mounts)):
        rootfs.mount(mounts[i], i, plan.cgroup_sources)
    rootfs.setup_dev()
    if _parent_hooks(plan):
        channel.send("hooks")  # the parent runs prestart and createRuntime: the mounts are there
        channel.receive()
    hooks.run(plan.config, "createContainer", _own_state(plan, "creating"))
    if plan.config.get("hostname") is not None and "uts" in plan.namespaces:
        sc.sethostname(plan.config["hostname"])
    if plan.config.get("domainname") is not None and "uts" in plan.namespaces:
        sc.setdomainname(plan.config["domainname"])
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
    program = find_program(plan.process)
    security.apply_rlimits(plan.process)
    security.apply_memory_policy(plan.linux)
    entry.join_memory()
    entry.close()
    # from here on processes of the container may exist (exec): none may read or ptrace the
    # init, a host interpreter until execve, nor reach it through /proc/1/exe (CVE-2019-5736)
    sc.prctl(sc.PR_SET_DUMPABLE, 0)
    channel.send("ready")
    channel.close()

    fifo = wait_for_start(plan)
    execute(plan, program, fifo)


def _parent_hooks(plan: Plan) -> bool:
    """Whether the parent has work at the "hooks" point (else no round trip for it)."""
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


def environment(process: dict) -> dict[str, str]:
    env = {}
    for item in process.get("env") or []:
        key, _, value = item.partition("=")
        env[key] = value
    return env


def find_program(process: dict) -> str:
    """Look args[0] up on the container's PATH, as execvp would; a missing program fails create."""
    name = process["args"][0]
    if "/" in name:
        candidates = [name if name.startswith("/") else os.path.join(process["cwd"], name)]
    else:
        search = environment(process).get("PATH", DEFAULT_PATH)
        candidates = [os.path.join(d or ".", name) for d in search.split(":")]
    for path in candidates:
        if os.path.isfile(path) and os.access(path, os.X_OK):
            return path
    if "/" in name:
        raise SetupError(f'exec: "{name}": stat {name}: no such file or directory')
    raise SetupError(f'exec: "{name}": executable file not found in $PATH')


def wait_for_start(plan: Plan) -> int:
    """Block until `ocirun start` opens the exec fifo; startContainer hooks; report to start,
    or return the fifo when the report waits for the seccomp filter's listener."""
    fifo = os.open(EXEC_FIFO, os.O_WRONLY | os.O_CLOEXEC, dir_fd=plan.state_dir_fd)
    os.close(plan.state_dir_fd)
    try:
        hooks.run(plan.config, "startContainer", _own_state(plan, "created"))
    except BaseException as exc:
        os.write(fifo, f"error {describe(exc)}".encode())
        os._exit(1)
    if security.notifies(plan.linux):
        return fifo
    os.write(fifo, b"0")
    os.close(fifo)
    return -1


def execute(plan: Plan, program: str, fifo: int = -1) -> None:
    """Process security in the right order, then execve."""
    process = plan.process
    env = environment(process)
    if "HOME" not in env:
        env["HOME"] = home_directory(process.get("user", {}).get("uid", 0))
    hand_over = None
    if fifo >= 0:
        from ocirun.seccomp_agent import hand_over_through_fifo

        hand_over = hand_over_through_fifo(fifo)
    security.finish(process, plan.linux, plan.preserve_fds, plan.umask, hand_over)
    os.execve(program, process["args"], env)


def home_directory(uid: int) -> str:
    """The uid's home in the container's /etc/passwd, or "/" (what runc gives a missing HOME)."""
    try:
        with open("/etc/passwd", "rb") as f:
            for line in f:
                fields = line.decode(errors="replace").rstrip("\n").split(":")
                if len(fields) > 5 and fields[2] == str(uid) and fields[5]:
                    return fields[5]
    except OSError:
        pass
    return "/"
