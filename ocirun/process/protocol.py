"""The pipes between ocirun and the processes it forks, and the messages they carry.

Two pipes: children → parent carries requests and reports, parent → children the answers
(always GO). A message is one line, a word and its details. A child that dies closes its end,
so the parent never waits for a message that cannot come.

`create` (process/builder.py ↔ process/stage1.py, process/init.py), in this order:

    USERNS "userns"           stage 1 has unshared a user namespace: the parent writes its
                              uid_map and gid_map (namespaces.write_id_mappings), then GO
    PID    "pid N joined|move" stage 1 has forked the init N, in its cgroup2 cgroup or not
                              ("move": the parent moves it there now); GO, read by the init
    CGROUP "cgroup"           the init is about to unshare its cgroup namespace: GO once the
                              parent has moved it into its cgroup2 cgroup
    HOOKS  "hooks"            the mounts are there: the parent moves netDevices and runs the
                              prestart and createRuntime hooks, then GO
    READY  "ready"            the init waits on the exec fifo: create is done
    MOUNT  "mount PATH"       (at any time) the init is about to mount PATH in the host's
                              namespace: the parent records it for delete to undo (in the
                              progress record first, should create be killed), then GO
    ERROR  "error MESSAGE"    (at any time) the stage failed; the parent reports MESSAGE

USERNS and PID come only through stage 1, CGROUP only with a new cgroup namespace, HOOKS only
when the parent has work there. `exec` (process/exec.py): the parent sends GO once stage 1 is
in the container's cgroup2 cgroup, stage 1 reports PID "pid N"; stage 2 may send SECCOMP
"seccomp FD" (its filter's SCMP_ACT_NOTIFY listener is FD: the parent passes it on to the
seccomp agent, then GO); then ERROR or end of file (stage 2 reached execve). An unknown
message, or one out of this order, is an error.
"""

import os

from ocirun.errors import OcirunError, SetupError

USERNS, PID, CGROUP, HOOKS, READY = "userns", "pid", "cgroup", "hooks", "ready"
MOUNT, ERROR, SECCOMP = "mount", "error", "seccomp"
GO = "go"

CREATE_ORDER = (USERNS, PID, CGROUP, HOOKS, READY)
EXEC_ORDER = (PID,)
_ANY_TIME = (MOUNT, ERROR)


class ParentGone(Exception):
    """A child read end of file: the parent gave up, and reports why itself."""


class Channel:
    """Both pipes; after fork each side keeps only the ends it uses."""

    def __init__(self) -> None:
        self.up_r, self.up_w = os.pipe2(os.O_CLOEXEC)  # children -> parent
        self.down_r, self.down_w = os.pipe2(os.O_CLOEXEC)  # parent -> children
        self._buffer = b""

    def as_parent(self) -> "Channel":
        os.close(self.up_w)
        os.close(self.down_r)
        self.up_w = self.down_r = -1
        return self

    def as_child(self) -> "Channel":
        os.close(self.up_r)
        os.close(self.down_w)
        self.up_r = self.down_w = -1
        return self

    def send(self, message: str) -> None:
        fd = self.up_w if self.up_w >= 0 else self.down_w
        os.write(fd, message.replace("\n", " ").encode() + b"\n")

    def receive(self) -> str:
        """The next line from the other side; SetupError if the other side is gone."""
        fd = self.up_r if self.up_r >= 0 else self.down_r
        while b"\n" not in self._buffer:
            chunk = os.read(fd, 4096)
            if not chunk:
                if fd == self.down_r:
                    raise ParentGone
                raise SetupError("container init exited during setup")
            self._buffer += chunk
        line, _, self._buffer = self._buffer.partition(b"\n")
        return line.decode()

    def wait_go(self) -> None:
        """(child) Block until the parent answers GO."""
        answer = self.receive()
        if answer != GO:
            raise SetupError(f"setup protocol: expected {GO!r} from ocirun, got {answer!r}")

    def close(self) -> None:
        for name in ("up_r", "up_w", "down_r", "down_w"):
            fd = getattr(self, name)
            if fd >= 0:
                os.close(fd)
                setattr(self, name, -1)


class Messages:
    """(parent) The children's messages, checked against the documented order."""

    def __init__(self, channel: Channel, order: tuple[str, ...]) -> None:
        self.channel = channel
        self.order = order
        self.last = -1

    def next(self) -> tuple[str, str]:
        """(word, details) of the next message; ERROR raises SetupError with its message."""
        word, _, details = self.channel.receive().partition(" ")
        if word == ERROR:
            raise SetupError(details)
        if word not in _ANY_TIME:
            if word not in self.order:
                raise SetupError(f"setup protocol: unknown message {word!r}")
            at = self.order.index(word)
            if at <= self.last:
                raise SetupError(f"setup protocol: {word!r} after {self.order[self.last]!r}")
            self.last = at
        return word, details


def run_child(channel: Channel, function, *args) -> None:
    """Run a stage in a forked child, report any error to the parent; never return."""
    code = 1
    try:
        function(*args)
        code = 0
    except ParentGone:
        pass  # no second error line for the caller: the parent has its own
    except BaseException as exc:  # a bug too: report it, never fall back into the parent's code
        report(channel, describe(exc))
    finally:
        os._exit(code)


def describe(exc: BaseException) -> str:
    """One line for an error of a forked stage."""
    if isinstance(exc, OcirunError):
        return str(exc)
    if isinstance(exc, OSError):
        return f"{exc.filename}: {exc.strerror}" if exc.filename else f"{exc.strerror or exc}"
    return f"internal error: {type(exc).__name__}: {exc}"


def report(channel: Channel, message: str) -> None:
    """To the parent while it listens; afterwards (after start) to the process's stderr."""
    try:
        channel.send(f"{ERROR} {message}")
    except OSError:
        try:
            os.write(2, f"ocirun: {message}\n".encode())
        except OSError:
            pass
