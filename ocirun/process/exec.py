"""`exec`: start another process in a running container.

    ocirun exec ──fork──> stage 1: not dumpable; joins the container's cgroup (cgroups.Entry),
                  │                the init's namespaces (user first, mount last), chroots into
                  │                its root → fork
                  │          └──fork──> stage 2 (in the container's pid and time namespaces):
                  │                     setsid, terminal, process security, execve
                  └── reads "pid N", then either "error MSG" or end of file (the execve happened)

Stage 1 exits once stage 2 exists, so stage 2 is re-parented to the caller's subreaper
(containerd's shim, conmon), or to ocirun itself when it waits for the process.
"""

import os

from ocirun import namespaces, security
from ocirun import syscalls as sc
from ocirun.config import Config
from ocirun.errors import InvalidState, SetupError
from ocirun.log import log
from ocirun.process import program
from ocirun.process.protocol import (
    EXEC_ORDER,
    GO,
    PID,
    SECCOMP,
    Channel,
    Messages,
    run_child,
)  # fmt: skip
from ocirun.state import PAUSED, STOPPED, Container, write_pid_file


class ExecOptions:
    """What `exec` needs besides the process: its stdio, pid file and kept fds."""

    def __init__(self, console_fd: int = -1, pid_file: str | None = None,
                 preserve_fds: int = 0, ignore_paused: bool = False,
                 sub_cgroups: dict[str, str] | None = None) -> None:  # fmt: skip
        self.console_fd = console_fd
        self.pid_file = pid_file
        self.preserve_fds = preserve_fds
        self.ignore_paused = ignore_paused  # a paused container: the process waits for resume
        self.sub_cgroups = sub_cgroups  # --cgroup: {controller or "": path below the container's}


def check_can_exec(container: Container, ignore_paused: bool = False) -> None:
    """Refuse a stopped or paused container."""
    status = container.status()
    if status == STOPPED:
        raise InvalidState(f"cannot exec in a stopped container: {container.id}")
    if status == PAUSED and not ignore_paused:
        raise InvalidState(f"cannot exec in a paused container: {container.id}")


def execute(container: Container, process: dict, opts: ExecOptions) -> int:
    """Start process in the container; return its host pid once it has called execve."""
    check_can_exec(container, opts.ignore_paused)
    security.check(process)
    seccomp = Config(container.config).linux.get("seccomp")
    if seccomp:
        from ocirun import seccomp as filters

        filters.check(seccomp)  # loads libseccomp now: the children cannot once in the container
    channel = Channel()
    entry = container.cgroup().open_entry(opts.sub_cgroups)
    log.debug("nsexec container setup: forking the exec stages")
    try:
        stage1, joined = entry.fork()
        if stage1 == 0:
            run_child(channel.as_child(), _stage1, container, process, opts, channel, entry)
        channel.as_parent()
        try:
            pid = _converse(channel, stage1, None if joined else entry, container)
        finally:
            os.waitpid(stage1, 0)
    finally:
        entry.close()
        channel.close()
    if opts.pid_file:
        _write_pid_file(opts.pid_file, pid)
    return pid


def _write_pid_file(path: str, pid: int) -> None:
    """The pid file, or the process killed (as runc does): no process the caller cannot track."""
    try:
        write_pid_file(path, pid)
    except OSError as exc:
        _kill(pid)
        raise SetupError(f"--pid-file {path}: {exc.strerror}") from None


def _converse(channel: Channel, stage1: int, entry, container: Container) -> int:
    """Put stage 1 in the container's cgroup2 cgroup (entry: when clone3 could not), learn
    stage 2's pid, wait for its execve."""
    if entry:
        try:
            entry.move_into_cgroup2(stage1)
        except BaseException:
            _kill(stage1)
            raise
    channel.send(GO)
    _, details = Messages(channel, EXEC_ORDER).next()  # PID, or ERROR raises
    pid = int(details)
    message = _read_to_end(channel)
    if message.startswith(f"{SECCOMP} "):  # stage 2's filter has a listener for an agent
        from ocirun.seccomp_agent import pass_on_from_exec

        pass_on_from_exec(container, pid, message)  # failing: stage 2 never gets its GO
        channel.send(GO)
        message = _read_to_end(channel)
    if message:
        _reap(pid)
        raise SetupError(message.removeprefix("error "))
    return pid


def _read_to_end(channel: Channel) -> str:
    """The rest of what the children send: empty when stage 2 reached execve."""
    try:
        return channel.receive()
    except SetupError:  # end of file: every write end closed on execve or exit
        return ""


def _kill(pid: int) -> None:
    try:
        os.kill(pid, 9)
    except ProcessLookupError:
        pass


def _reap(pid: int) -> None:
    """Wait for a failed stage 2 if it became our child (ocirun as subreaper)."""
    try:
        os.waitpid(pid, 0)
    except ChildProcessError:
        pass


def _stage1(container: Container, process: dict, opts: ExecOptions, channel: Channel,
            entry) -> None:  # fmt: skip
    sc.prctl(sc.PR_SET_DUMPABLE, 0)  # until execve: no ptrace, no /proc access from inside
    security.write_oom_score_adj(process)  # as the host's root: a user namespace may not
    entry.join_v1()
    entry.join_memory()
    entry.close()
    channel.wait_go()  # the parent has put us in the container's cgroup2 cgroup, if it had to
    root = os.open(f"/proc/{container.pid}/root", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    namespaces.join_all_of(container.pid)
    os.fchdir(root)
    os.chroot(".")
    os.close(root)
    pid = os.fork()
    if pid == 0:
        run_child(channel, _stage2, container, process, opts, channel)
    channel.send(f"{PID} {pid}")


def _stage2(container: Container, process: dict, opts: ExecOptions, channel: Channel) -> None:
    log.debug("child process in init(): exec stage 2, in the container's namespaces")
    os.setsid()
    if process.get("terminal"):
        from ocirun import terminal  # loaded by the caller before the chroot

        terminal.setup_console(opts.console_fd, process.get("consoleSize"), mount_console=False)
    os.chdir(process["cwd"])
    path = program.find_program(process)
    security.apply_rlimits(process)
    log.debug(f"setns_init: about to exec {path}")
    program.execute(path, process, Config(container.config).linux, opts.preserve_fds, 0o022,
                    lambda fd: (channel.send(f"{SECCOMP} {fd}"), channel.wait_go()))  # fmt: skip
