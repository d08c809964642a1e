"""SCMP_ACT_NOTIFY: handing the filter's listener fd to the seccomp agent, as runc does.

The process that loads the filter (the init at `start`, or an `exec`'d process) sends the
listener fd's number to the ocirun command it reports to, and waits; that command copies the
fd with pidfd_getfd, connects to linux.seccomp.listenerPath and sends, in one message, the
container process state (JSON: ociVersion, fds ["seccompFd"], pid, metadata, state) with the
fd attached (SCM_RIGHTS), then lets the process go on to execve. The agent answers the
notifications from then on; when it goes away the notified calls fail with ENOSYS.
"""

import os

from ocirun import syscalls as sc
from ocirun.errors import SetupError

SPEC_VERSION = "1.0.2"
FD_NAME = "seccompFd"


def hand_over_through_fifo(fifo: int):
    """For the init: report the listener through the exec fifo, where `start` reads the
    init's word, then wait until `start` (its only reader) has passed it on and closed it."""
    import select  # built in: nothing to load once in the container

    def hand_over(listener: int) -> None:
        os.write(fifo, f"seccomp {listener}".encode())  # one write: start reads it whole
        poller = select.poll()
        poller.register(fifo, 0)  # POLLERR alone: the reading end is closed
        poller.poll()
        os.close(fifo)

    return hand_over


def send(seccomp: dict, pid: int, listener: int, state: dict) -> None:
    """Copy listener (fd number `listener` of process pid) and send it to the agent."""
    fd = _copy_fd(pid, listener)
    try:
        _send_to_agent(seccomp, fd, pid, state)
    finally:
        os.close(fd)


def _copy_fd(pid: int, number: int) -> int:
    try:
        pidfd = sc.syscall("pidfd_open", pid, 0)
    except OSError as exc:
        raise SetupError(f"seccomp notify: cannot open pid {pid}: {exc.strerror}") from None
    try:
        return sc.syscall("pidfd_getfd", pidfd, number, 0)
    except OSError as exc:
        raise SetupError(f"seccomp notify: cannot get the listener fd: {exc.strerror}") from None
    finally:
        os.close(pidfd)


def _send_to_agent(seccomp: dict, fd: int, pid: int, state: dict) -> None:
    import socket
    import struct

    from ocirun import jsonio

    path = seccomp.get("listenerPath", "")
    message = {"ociVersion": SPEC_VERSION, "fds": [FD_NAME], "pid": pid, "state": state}
    if seccomp.get("listenerMetadata"):
        message["metadata"] = seccomp["listenerMetadata"]
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC) as conn:
        try:
            conn.connect(path)
        except OSError as exc:
            raise SetupError(
                "failed to connect with seccomp agent specified in the seccomp profile: "
                f"dial unix {path}: {exc.strerror}"
            ) from None
        try:
            rights = (socket.SOL_SOCKET, socket.SCM_RIGHTS, struct.pack("i", fd))
            conn.sendmsg([jsonio.dumps(message).encode()], [rights])
        except OSError as exc:
            raise SetupError(f"cannot send seccomp fd to {path}: {exc.strerror}") from None


def pass_on_from_init(container, data: bytes) -> bytes:
    """For `start`: the init's listener to the agent. What the init would have reported
    instead: b"0", or b"error ..." once the init is killed (before it may reach execve)."""
    try:
        state = container.oci_state("creating")  # as runc reports the init's filter
        send(container.config["linux"]["seccomp"], container.pid, int(data[8:]), state)
    except (SetupError, ValueError) as exc:
        try:
            os.kill(container.pid, 9)
        except ProcessLookupError:
            pass
        return f"error {exc}".encode()
    return b"0"


def pass_on_from_exec(container, pid: int, message: str) -> None:
    """For `exec`: the new process's listener to the agent."""
    state = container.oci_state("running")
    send(container.config["linux"]["seccomp"], pid, int(message[8:]), state)
